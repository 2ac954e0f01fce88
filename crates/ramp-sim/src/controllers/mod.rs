//! Workload behaviour for the embedded cluster: the controllers a real cluster
//! runs, in-process against the [`Store`], driven by its watches.
//!
//! - **Deployment**: one ReplicaSet per pod template, named
//!   `<deployment>-<pod-template-hash>` ([`pod_template_hash`]); rolling updates
//!   within `maxSurge`/`maxUnavailable` (and `Recreate`); `spec.paused` stops
//!   progress toward a new template; scaling; revision history; the status
//!   `kubectl rollout status` reads, including `ProgressDeadlineExceeded`. A
//!   template change is acted on only after
//!   [`ControllerConfig::template_change_delay`].
//! - **ReplicaSet**: pods `<replicaset>-<5 chars>` from the template, owned by
//!   the ReplicaSet; surplus pods deleted (unready and newest first);
//!   `minReadySeconds` honoured for availability.
//! - **Kubelet**: pods become Running and Ready after
//!   [`ControllerConfig::pod_ready_delay`]; see [`kubelet`] for the failure
//!   annotations and the `:bad` image marker.
//! - **Endpoints**: every Service with a selector gets an Endpoints object.
//! - **Job**: pods up to `parallelism` until `completions` succeeded
//!   (`Complete`) or more than `backoffLimit` failed (`Failed`).
//!   The kubelet runs a pod whose `restartPolicy` is `Never` or `OnFailure`
//!   to completion (`Succeeded`, or `Failed` with the
//!   `sim.ramp.dev/exit-code` annotation).
//!
//! Garbage collection through ownerReferences and namespace deletion are done
//! by the [`Store`] itself.
//!
//! ```no_run
//! # async fn demo() {
//! use ramp_sim::controllers::{ControllerConfig, Controllers};
//! let store = ramp_sim::Store::new();
//! let controllers = Controllers::start(store.clone(), ControllerConfig::default());
//! // ... create Deployments; pods appear and become Ready ...
//! controllers.shutdown().await;
//! # }
//! ```

// Reconcilers pass the store's `ApiError` through unchanged; it is large, but
// errors are rare and never hot.
#![allow(clippy::result_large_err)]

mod deployment;
mod endpoints;
mod hash;
mod job;
pub mod kubelet;
mod replicaset;
mod runner;
mod util;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

pub use deployment::REVISION_ANNOTATION;
pub use hash::{POD_TEMPLATE_HASH_LABEL, pod_template_hash};
pub use kubelet::{
    BAD_IMAGE_MARKER, EXIT_CODE_ANNOTATION, NEVER_READY_ANNOTATION, READY_AFTER_MS_ANNOTATION,
};

/// Which controllers run, and their delays. Everything is on by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Run the Deployment controller.
    pub deployments: bool,
    /// Run the ReplicaSet controller.
    pub replicasets: bool,
    /// Run the kubelet (pod status).
    pub kubelet: bool,
    /// Run the Endpoints controller.
    pub endpoints: bool,
    /// Run the Job controller.
    pub jobs: bool,
    /// How long after a Deployment's pod template changes the controller acts
    /// on it (so that pausing right after the change can win the race, as in a
    /// real cluster). Default 50 ms.
    pub template_change_delay: Duration,
    /// How long a pod takes from creation to Running and Ready, unless its
    /// `sim.ramp.dev/ready-after-ms` annotation says otherwise. Default 100 ms.
    pub pod_ready_delay: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            deployments: true,
            replicasets: true,
            kubelet: true,
            endpoints: true,
            jobs: true,
            template_change_delay: Duration::from_millis(50),
            pod_ready_delay: Duration::from_millis(100),
        }
    }
}

impl ControllerConfig {
    /// No controllers at all (a bare API server).
    pub fn none() -> Self {
        ControllerConfig {
            deployments: false,
            replicasets: false,
            kubelet: false,
            endpoints: false,
            jobs: false,
            ..Default::default()
        }
    }
}

/// Running controllers. Dropping this stops them too.
#[derive(Debug)]
pub struct Controllers {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Controllers {
    /// Starts the configured controllers as tokio tasks on the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(store: Store, config: ControllerConfig) -> Controllers {
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        if config.deployments {
            tasks.push(tokio::spawn(runner::run(
                store.clone(),
                deployment::DeploymentController::new(config.template_change_delay),
                cancel.child_token(),
            )));
        }
        if config.replicasets {
            tasks.push(tokio::spawn(runner::run(
                store.clone(),
                replicaset::ReplicaSetController::default(),
                cancel.child_token(),
            )));
        }
        if config.kubelet {
            tasks.push(tokio::spawn(runner::run(
                store.clone(),
                kubelet::Kubelet::new(config.pod_ready_delay),
                cancel.child_token(),
            )));
        }
        if config.jobs {
            tasks.push(tokio::spawn(runner::run(
                store.clone(),
                job::JobController::default(),
                cancel.child_token(),
            )));
        }
        if config.endpoints {
            tasks.push(tokio::spawn(runner::run(
                store,
                endpoints::EndpointsController::default(),
                cancel.child_token(),
            )));
        }
        Controllers { cancel, tasks }
    }

    /// Stops the controllers and waits for them to finish.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
