//! Helpers for the routing scenarios (subsets, HTTPRoute, mirror): the
//! objects' shapes and requests sent through the sim's mesh router.

use super::*;

impl Env {
    /// Approve `step` of `rollout` (see [`Env::approve_try`]); panics when the
    /// guarded patch is refused.
    pub fn approve(&self, rollout: &str, step: i64) {
        let out = self.approve_try(rollout, step);
        assert!(
            out.status.success(),
            "approving step {step} of {rollout} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `(stableRevision, podTemplateHash)` of a Rollout's canary status: the
    /// `pod-template-hash` of the stable pods and of the canary pods.
    pub fn rollout_hashes(&self, rollout: &str) -> (String, String) {
        let s = self.rollout_status(rollout);
        let c = &s["canaryStatus"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (text(&c["stableRevision"]), text(&c["podTemplateHash"]))
    }

    /// Wait until `deployment` reports `n` ready replicas.
    pub fn wait_ready_replicas(&self, deployment: &str, n: i64) {
        self.wait_until(
            &format!("{deployment} has {n} ready pods"),
            Duration::from_secs(60),
            |e| {
                e.get("deployment", deployment)
                    .is_some_and(|d| d["status"]["readyReplicas"] == n)
            },
        );
    }

    /// Assert that the object `kind/name` is back to `original` exactly: the
    /// same spec, labels and annotations (so none of ramp's are left).
    pub fn assert_restored(&self, kind: &str, name: &str, original: &Value) {
        let live = self
            .get(kind, name)
            .unwrap_or_else(|| panic!("{kind} {name} exists"));
        assert_eq!(
            live["spec"], original["spec"],
            "{kind} {name}: spec restored exactly"
        );
        for key in ["labels", "annotations"] {
            assert_eq!(
                live["metadata"][key], original["metadata"][key],
                "{kind} {name}: metadata.{key} as the user left them (none of ramp's)"
            );
        }
    }
}

/// Requests sent through the mesh over and over in the background (batches
/// of 100, one `ramp-sim route` each) while a scenario runs, keeping every
/// batch in which a request failed (or a mirrored copy failed). Users notice
/// a failed request even when every step's end state is right: this catches
/// the moments between states, e.g. a route naming a subset that is gone.
pub struct RouteProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<ProbeResult>>,
}

/// What a [`RouteProbe`] saw.
#[derive(Debug, Default)]
pub struct ProbeResult {
    /// Batches sent.
    pub batches: u64,
    /// Route reports of the batches with a failed request or mirrored copy.
    pub failed: Vec<Value>,
}

impl Env {
    /// Start probing `host` (from inside the mesh, or through `gateway`) with `headers`.
    pub fn probe_routes(&self, gateway: Option<&str>, host: &str, headers: &[&str]) -> RouteProbe {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let mut args: Vec<String> = vec!["route".into()];
        if let Some(g) = gateway {
            args.extend(["--gateway".into(), g.into()]);
        }
        args.extend([
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
            "-n".into(),
            self.ns.clone(),
            "--host".into(),
            host.into(),
            "--requests".into(),
            "100".into(),
            "-o".into(),
            "json".into(),
        ]);
        for h in headers {
            args.extend(["-H".into(), (*h).into()]);
        }
        let exe = bin("ramp-sim");
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut result = ProbeResult::default();
            while !st.load(Ordering::SeqCst) {
                let Ok(out) = Command::new(&exe).args(&args).output() else {
                    break;
                };
                result.batches += 1;
                let report: Value = if out.status.success() {
                    serde_json::from_slice(&out.stdout).unwrap_or_default()
                } else {
                    serde_json::json!({"failed": String::from_utf8_lossy(&out.stderr)})
                };
                let failed = |v: &Value| v.as_object().is_some_and(|m| !m.is_empty());
                if !out.status.success()
                    || failed(&report["errors"])
                    || failed(&report["shadow"]["errors"])
                {
                    result.failed.push(report);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            result
        });
        RouteProbe {
            stop,
            thread: Some(thread),
        }
    }
}

impl RouteProbe {
    /// Stop probing; panics unless every request of every batch was served
    /// (and at least `min_batches` batches ran).
    pub fn assert_no_failures(mut self, what: &str, min_batches: u64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let result = self
            .thread
            .take()
            .map(|t| t.join().expect("probe thread"))
            .unwrap_or_default();
        assert!(
            result.failed.is_empty(),
            "{what}: {} of {} batches of requests had failures, first: {:#}",
            result.failed.len(),
            result.batches,
            result.failed[0]
        );
        assert!(
            result.batches >= min_batches,
            "{what}: only {} batches of requests were sent",
            result.batches
        );
    }
}

impl Drop for RouteProbe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
