//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! One replica holds the Lease and runs the controller; the others keep the
//! webhooks and metrics up and wait. Every write carries the resourceVersion it
//! read, so two candidates never both believe they won.
//!
//! Why our own and not a crate: `kube-lease-manager` 0.13 (kube 5) would do
//! the Lease bookkeeping, but ramp's guarantees sit in the few lines around
//! it — the holder steps down the moment a renewal is overdue (not when the
//! next successful read says so), the Lease is released on shutdown so the
//! next replica takes over at once, and the decision is a pure function
//! ([`decide`]) tested case by case. Those would have to be rebuilt on top of
//! the crate's watch channel anyway; the whole election is about 150 lines.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name and a random suffix).
    pub identity: String,
    /// How long a holder's claim lasts without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and candidates retry.
    pub retry_period: Duration,
}

/// What a candidate should do with a Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it: create it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// The holder let it expire (or released it): take it over.
    TakeOver,
    /// Someone else holds a live claim.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// Pure decision from the Lease as read, at time `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: jiff::Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let expired = match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(MicroTime(t)) => t.as_second().saturating_add(duration) < now.as_second(),
        None => true,
    };
    if expired {
        Decision::TakeOver
    } else {
        Decision::Wait { holder }
    }
}

fn claim(cfg: &LeaseConfig, old: Option<&Lease>, now: jiff::Timestamp) -> Lease {
    let old_spec = old.and_then(|l| l.spec.clone()).unwrap_or_default();
    let ours = old_spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
    let transitions = old_spec.lease_transitions.unwrap_or(0) + i32::from(old.is_some() && !ours);
    Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            resource_version: old.and_then(|l| l.metadata.resource_version.clone()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(cfg.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: if ours {
                old_spec.acquire_time
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    }
}

/// Run the election until `stop` fires; `leading` says whether we hold the Lease.
///
/// When the Lease is lost after being held, `leading` turns false; the caller
/// should stop acting as leader at once.
pub async fn run(
    client: kube::Client,
    cfg: LeaseConfig,
    leading: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_renew = tokio::time::Instant::now();
    loop {
        let now = jiff::Timestamp::now();
        let result = async {
            let current = api.get_opt(&cfg.name).await?;
            match decide(current.as_ref(), &cfg.identity, now) {
                Decision::Create => api
                    .create(&PostParams::default(), &claim(&cfg, None, now))
                    .await
                    .map(|_| true),
                Decision::Renew | Decision::TakeOver => api
                    .replace(
                        &cfg.name,
                        &PostParams::default(),
                        &claim(&cfg, current.as_ref(), now),
                    )
                    .await
                    .map(|_| true),
                Decision::Wait { holder } => {
                    tracing::debug!(%holder, "another replica leads");
                    Ok(false)
                }
            }
        }
        .await;
        match result {
            Ok(held) => {
                if held {
                    last_renew = tokio::time::Instant::now();
                }
                if *leading.borrow() != held {
                    tracing::info!(identity = %cfg.identity, leading = held, "leadership changed");
                    let _ = leading.send(held);
                }
            }
            Err(e) => {
                // A conflict means another candidate wrote first: re-read next round.
                tracing::warn!(error = %e, "lease update failed");
                if *leading.borrow() && last_renew.elapsed() >= cfg.lease_duration {
                    tracing::error!("could not renew the lease in time: stepping down");
                    let _ = leading.send(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.retry_period) => {}
            _ = stop.cancelled() => break,
        }
    }
    if *leading.borrow() {
        release(&api, &cfg).await;
        let _ = leading.send(false);
    }
}

/// Give the Lease up so another replica takes over without waiting for expiry.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %e, "could not release the lease");
    } else {
        tracing::info!("released the lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, now: jiff::Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    now.checked_sub(jiff::SignedDuration::from_secs(renewed_secs_ago))
                        .unwrap(),
                )),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = jiff::Timestamp::now();
        assert_eq!(decide(None, "me", now), Decision::Create);
        assert_eq!(
            decide(Some(&lease(Some("me"), 5, now)), "me", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease(Some("other"), 5, now)), "me", now),
            Decision::Wait {
                holder: "other".into()
            }
        );
        assert_eq!(
            decide(Some(&lease(Some("other"), 60, now)), "me", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease(None, 1, now)), "me", now),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_takeover_counts_a_transition_and_keeps_the_resource_version() {
        let now = jiff::Timestamp::now();
        let mut old = lease(Some("other"), 60, now);
        old.metadata.resource_version = Some("42".into());
        let cfg = LeaseConfig {
            namespace: "ramp-system".into(),
            name: "ramp-operator".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        let l = claim(&cfg, Some(&old), now);
        assert_eq!(l.metadata.resource_version.as_deref(), Some("42"));
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(1));
        // Renewing our own lease is not a transition.
        let renewed = claim(&cfg, Some(&claim(&cfg, Some(&old), now)), now);
        assert_eq!(renewed.spec.unwrap().lease_transitions, Some(1));
    }
}
