//! The log of answered writes, in the order they were answered (`GET /sim/v1/writes`).
//!
//! A crash test records the writes of a crash-free run here, then kills the client after
//! each of them in turn; a leader-election test reads which identity wrote when.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::RequestInfo;

/// One answered write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// `User-Agent` of the writer.
    pub user_agent: String,
    /// create, update, patch, delete or deletecollection.
    pub verb: String,
    /// See [`RequestInfo::resource`].
    pub resource: String,
    /// Namespace in the path ("" for cluster-scoped objects).
    pub namespace: String,
    /// Name in the path ("" for a create or a deletecollection).
    pub name: String,
    /// HTTP status code of the answer.
    pub code: u16,
}

/// Answered writes in order. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct WriteLog {
    inner: Arc<Mutex<Vec<WriteEntry>>>,
}

impl WriteLog {
    fn lock(&self) -> MutexGuard<'_, Vec<WriteEntry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs one answered write.
    pub fn push(&self, r: &RequestInfo, code: u16) {
        let mut log = self.lock();
        let seq = log.len() as u64 + 1;
        log.push(WriteEntry {
            seq,
            user_agent: r.user_agent.clone(),
            verb: r.verb.clone(),
            resource: r.resource.clone(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            code,
        });
    }

    /// The writes so far.
    pub fn snapshot(&self) -> Vec<WriteEntry> {
        self.lock().clone()
    }

    /// Forgets every write.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FaultRule, Faults, Stats};
    use super::*;
    use http::Method;

    fn req(method: Method, path: &str, ua: &str) -> RequestInfo {
        RequestInfo::classify(&method, path, None, ua)
    }

    #[test]
    fn writes_are_logged_in_order_with_namespace_and_name() {
        let s = Stats::default();
        s.record(&req(Method::GET, "/api/v1/namespaces/d/pods/p", "a"), 200);
        s.record(&req(Method::POST, "/api/v1/namespaces/d/pods", "a"), 201);
        s.record(
            &req(
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/web/status",
                "b",
            ),
            409,
        );
        s.record(&req(Method::DELETE, "/api/v1/namespaces/x", "a"), 200);
        let log = s.writes().snapshot();
        let rows: Vec<_> = log
            .iter()
            .map(|w| {
                (
                    w.seq,
                    w.user_agent.as_str(),
                    w.verb.as_str(),
                    w.resource.as_str(),
                    w.namespace.as_str(),
                    w.name.as_str(),
                    w.code,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, "a", "create", "pods", "d", "", 201),
                (2, "b", "patch", "apps/deployments/status", "d", "web", 409),
                (3, "a", "delete", "namespaces", "", "x", 200),
            ]
        );
        s.writes().clear();
        assert!(s.writes().snapshot().is_empty());
    }

    #[test]
    fn the_kth_answered_write_of_a_user_agent_kills_the_process_once() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let f = Faults::default();
        f.add(FaultRule {
            user_agent: Some("ramp-operator".into()),
            kill_after_writes: Some(2),
            kill_pid: Some(child.id()),
            ..Default::default()
        })
        .unwrap();
        let write = req(
            Method::POST,
            "/api/v1/namespaces/d/configmaps",
            "ramp-operator/1",
        );
        let read = req(
            Method::GET,
            "/api/v1/namespaces/d/configmaps",
            "ramp-operator/1",
        );
        let other = req(Method::POST, "/api/v1/namespaces/d/configmaps", "kubectl");
        for r in [&write, &read, &other, &read] {
            f.answered(r);
        }
        assert!(child.try_wait().unwrap().is_none(), "alive after one write");
        f.answered(&write);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
        f.answered(&write);
        let st = &f.list()[0];
        assert_eq!((st.answered_writes, st.killed), (2, true));
    }

    #[test]
    fn kill_rules_are_checked() {
        let f = Faults::default();
        for (rule, field) in [
            (
                FaultRule {
                    kill_after_writes: Some(3),
                    ..Default::default()
                },
                "killPid",
            ),
            (
                FaultRule {
                    kill_after_writes: Some(0),
                    kill_pid: Some(1234),
                    ..Default::default()
                },
                "killAfterWrites",
            ),
            (
                FaultRule {
                    latency_ms: Some(50),
                    latency_max_ms: Some(20),
                    ..Default::default()
                },
                "latencyMaxMs",
            ),
        ] {
            let e = f.add(rule).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn random_latency_stays_in_its_range() {
        let f = Faults::default();
        f.add(FaultRule {
            latency_ms: Some(20),
            latency_max_ms: Some(200),
            ..Default::default()
        })
        .unwrap();
        let r = req(Method::GET, "/api/v1/namespaces/d/pods", "x");
        let ms: Vec<u128> = (0..200).map(|_| f.decide(&r).latency.as_millis()).collect();
        assert!(ms.iter().all(|m| (20..=200).contains(m)), "{ms:?}");
        assert!(ms.iter().any(|m| *m != ms[0]), "not a fixed delay");
    }
}
