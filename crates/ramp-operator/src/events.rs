//! Events for Rollouts, one `events.k8s.io/v1` Event per planned event.
//!
//! kube-runtime's `Recorder` keeps every Event it wrote for six minutes and
//! scans that whole cache on each publish, so at thousands of Rollouts a mass
//! change costs quadratic CPU and hundreds of MiB. It also folds Events with
//! the same reason into one series regardless of their note, so a Rollout's
//! third `StepPaused` would still read "step 1". The planner emits an event
//! only on a transition, which is never a repeat worth folding: each is
//! created once, and nothing is kept.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::Reporter;

/// Writes Events as `reporter`.
pub struct Publisher {
    client: Client,
    reporter: Reporter,
    sequence: AtomicU64,
}

impl Publisher {
    /// A publisher writing through `client`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Publisher {
            client,
            reporter,
            sequence: AtomicU64::new(0),
        }
    }

    /// The Event for `regarding` (named after it, unique per publisher).
    pub fn event(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Event {
        let now = jiff::Timestamp::now();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let controller = &self.reporter.controller;
        Event {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond(),
                    seq
                )),
                ..ObjectMeta::default()
            },
            action: Some("Reconcile".into()),
            reason: Some(reason.into()),
            note: Some(note.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..Event::default()
        }
    }

    /// Create the Event.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        api.create(
            &PostParams::default(),
            &self.event(regarding, warning, reason, note),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_event_has_its_own_name_and_keeps_its_note() {
        // A client that is never used: building Events needs no server.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let p = Publisher::new(
            Client::try_from(config).unwrap(),
            Reporter {
                controller: "ramp".into(),
                instance: Some("pod-1".into()),
            },
        );
        let r = ObjectReference {
            namespace: Some("ns".into()),
            name: Some("demo".into()),
            kind: Some("Rollout".into()),
            ..ObjectReference::default()
        };
        let a = p.event(&r, false, "StepPaused", "step 1 paused");
        let b = p.event(&r, false, "StepPaused", "step 2 paused");
        assert_ne!(a.metadata.name, b.metadata.name);
        assert!(a.metadata.name.as_deref().unwrap().starts_with("demo."));
        assert_eq!(b.note.as_deref(), Some("step 2 paused"));
        assert_eq!(a.type_.as_deref(), Some("Normal"));
        assert_eq!(a.reporting_instance.as_deref(), Some("pod-1"));
        assert!(a.series.is_none());
        let w = p.event(&r, true, "RoutingDrift", "x");
        assert_eq!(w.type_.as_deref(), Some("Warning"));
    }
}
