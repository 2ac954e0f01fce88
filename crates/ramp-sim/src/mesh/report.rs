//! The outcome of routing N requests: counts per pod, version, pod-template-hash,
//! shadow (mirrored) traffic, and errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Where N requests went. Serialises to the shape `ramp-sim route -o json`
/// prints:
///
/// ```json
/// {"requests": 1000, "byPod": {"reviews-v2-6d8f-x2k9q": 1000}, "byVersion": {"v2": 1000},
///  "byPodTemplateHash": {"6d8f": 1000}, "shadow": {"byPod": {}, "byVersion": {}, ...},
///  "errors": {"503": 0}, ...}
/// ```
///
/// `byVersion` counts the `version` label of the pod that served each request
/// (`none` when the pod has no such label); `byPodTemplateHash` likewise the
/// `pod-template-hash` label. Keys after `errors` are extras for diagnosis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    /// Requests sent.
    pub requests: u64,
    /// Requests served, per pod name.
    pub by_pod: BTreeMap<String, u64>,
    /// Requests served, per the serving pod's `version` label.
    pub by_version: BTreeMap<String, u64>,
    /// Requests served, per the serving pod's `pod-template-hash` label.
    pub by_pod_template_hash: BTreeMap<String, u64>,
    /// Mirrored (shadow) copies of requests.
    pub shadow: ShadowReport,
    /// Requests that got an error status instead of reaching a pod, per status code.
    pub errors: BTreeMap<String, u64>,
    /// Why requests failed: one line per cause, with its count.
    #[serde(default)]
    pub error_reasons: BTreeMap<String, u64>,
    /// Requests served, per destination (`service` or `service/subset`).
    #[serde(default)]
    pub by_destination: BTreeMap<String, u64>,
    /// Which routing rule decided each request (`VirtualService/reviews http[0]`,
    /// `HTTPRoute/reviews rules[1].matches[0]`, `Service/reviews`).
    #[serde(default)]
    pub by_rule: BTreeMap<String, u64>,
    /// Requests answered by the proxy itself with a non-error status (redirects,
    /// direct responses), per status code.
    #[serde(default)]
    pub direct_responses: BTreeMap<String, u64>,
    /// Configuration conflicts a mesh would report (Istio IST0109).
    #[serde(default)]
    pub conflicts: Vec<Conflict>,
    /// Objects that were ignored, and why.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Requests served, per destination and then per pod (what the sim's
    /// telemetry needs: which Service each pod was reached through).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_destination_pod: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Mirrored requests. Mirroring never changes the primary response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    /// Mirrored copies sent (including those that failed).
    #[serde(default)]
    pub requests: u64,
    pub by_pod: BTreeMap<String, u64>,
    pub by_version: BTreeMap<String, u64>,
    #[serde(default)]
    pub by_pod_template_hash: BTreeMap<String, u64>,
    #[serde(default)]
    pub by_destination: BTreeMap<String, u64>,
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    #[serde(default)]
    pub error_reasons: BTreeMap<String, u64>,
    /// Mirrored copies served, per destination and then per pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_destination_pod: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Two or more objects claiming the same host, as a mesh would flag them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// Analyzer code: `IST0109` for VirtualServices (or HTTPRoutes) sharing a host.
    pub code: String,
    /// The host they share (fully qualified).
    pub host: String,
    /// `Kind/name` of each object involved, oldest first; the first one is used.
    pub objects: Vec<String>,
    /// Human-readable explanation.
    pub message: String,
}

/// Identity of a pod as counted in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodRef {
    pub name: String,
    pub version: String,
    pub hash: String,
}

/// The label value reported when a pod has no `version` / `pod-template-hash` label.
pub const NONE_LABEL: &str = "none";

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

impl RouteReport {
    pub(crate) fn served(&mut self, pod: &PodRef, destination: &str) {
        bump(&mut self.by_pod, &pod.name);
        bump(&mut self.by_version, &pod.version);
        bump(&mut self.by_pod_template_hash, &pod.hash);
        bump(&mut self.by_destination, destination);
        bump(
            self.by_destination_pod
                .entry(destination.to_owned())
                .or_default(),
            &pod.name,
        );
    }

    pub(crate) fn failed(&mut self, status: u16, reason: &str) {
        if status >= 400 {
            bump(&mut self.errors, &status.to_string());
            bump(&mut self.error_reasons, &format!("{status} {reason}"));
        } else {
            bump(&mut self.direct_responses, &status.to_string());
        }
    }

    pub(crate) fn ruled(&mut self, rule: &str) {
        bump(&mut self.by_rule, rule);
    }

    /// Requests served by pods with this `version` label.
    pub fn version(&self, version: &str) -> u64 {
        self.by_version.get(version).copied().unwrap_or(0)
    }

    /// Requests that failed with this status code.
    pub fn errors_with(&self, status: u16) -> u64 {
        self.errors.get(&status.to_string()).copied().unwrap_or(0)
    }

    /// All requests that failed, whatever the status.
    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests that reached a pod.
    pub fn total_served(&self) -> u64 {
        self.by_pod.values().sum()
    }

    /// A human-readable table (`ramp-sim route -o table`).
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "REQUESTS: {}", self.requests);
        let n = self.requests;
        section(&mut out, "POD", &self.by_pod, n);
        section(&mut out, "VERSION", &self.by_version, n);
        section(&mut out, "POD-TEMPLATE-HASH", &self.by_pod_template_hash, n);
        section(&mut out, "DESTINATION", &self.by_destination, n);
        section(&mut out, "RULE", &self.by_rule, n);
        section(&mut out, "ERROR", &self.errors, n);
        section(&mut out, "ERROR REASON", &self.error_reasons, n);
        section(&mut out, "DIRECT RESPONSE", &self.direct_responses, n);
        if self.shadow.requests > 0 || !self.shadow.by_pod.is_empty() {
            let _ = writeln!(out, "\nSHADOW REQUESTS: {}", self.shadow.requests);
            section(&mut out, "SHADOW POD", &self.shadow.by_pod, n);
            section(&mut out, "SHADOW VERSION", &self.shadow.by_version, n);
            section(
                &mut out,
                "SHADOW POD-TEMPLATE-HASH",
                &self.shadow.by_pod_template_hash,
                n,
            );
            section(
                &mut out,
                "SHADOW ERROR REASON",
                &self.shadow.error_reasons,
                n,
            );
        }
        for c in &self.conflicts {
            let _ = writeln!(out, "\nCONFLICT {} on {}: {}", c.code, c.host, c.message);
        }
        for w in &self.warnings {
            let _ = writeln!(out, "\nWARNING: {w}");
        }
        out
    }
}

impl ShadowReport {
    pub(crate) fn served(&mut self, pod: &PodRef, destination: &str) {
        self.requests += 1;
        bump(&mut self.by_pod, &pod.name);
        bump(&mut self.by_version, &pod.version);
        bump(&mut self.by_pod_template_hash, &pod.hash);
        bump(&mut self.by_destination, destination);
        bump(
            self.by_destination_pod
                .entry(destination.to_owned())
                .or_default(),
            &pod.name,
        );
    }

    pub(crate) fn failed(&mut self, status: u16, reason: &str) {
        self.requests += 1;
        bump(&mut self.errors, &status.to_string());
        bump(&mut self.error_reasons, &format!("{status} {reason}"));
    }

    /// Mirrored requests served by pods with this `version` label.
    pub fn version(&self, version: &str) -> u64 {
        self.by_version.get(version).copied().unwrap_or(0)
    }
}

fn section(out: &mut String, title: &str, counts: &BTreeMap<String, u64>, total: u64) {
    if counts.is_empty() {
        return;
    }
    let width = counts
        .keys()
        .map(|k| k.chars().count())
        .chain(std::iter::once(title.len()))
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "\n{title:<width$}  {:>8}  {:>6}", "COUNT", "SHARE");
    for (key, count) in counts {
        let share = if total == 0 {
            0.0
        } else {
            *count as f64 * 100.0 / total as f64
        };
        let _ = writeln!(out, "{key:<width$}  {count:>8}  {share:>5.1}%");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_the_documented_shape() {
        let mut r = RouteReport {
            requests: 3,
            ..Default::default()
        };
        let pod = PodRef {
            name: "reviews-v2-abc-12345".into(),
            version: "v2".into(),
            hash: "abc".into(),
        };
        r.served(&pod, "reviews/v2");
        r.served(&pod, "reviews/v2");
        r.failed(503, "no ready pods");
        r.shadow.served(&pod, "reviews/v2");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["requests"], 3);
        assert_eq!(v["byPod"]["reviews-v2-abc-12345"], 2);
        assert_eq!(v["byVersion"]["v2"], 2);
        assert_eq!(v["byPodTemplateHash"]["abc"], 2);
        assert_eq!(v["shadow"]["byPod"]["reviews-v2-abc-12345"], 1);
        assert_eq!(v["shadow"]["byVersion"]["v2"], 1);
        assert_eq!(v["errors"]["503"], 1);
        // The documented keys come first, in the documented order.
        let text = serde_json::to_string(&r).unwrap();
        let pos: Vec<usize> = [
            "\"requests\"",
            "\"byPod\"",
            "\"byVersion\"",
            "\"byPodTemplateHash\"",
            "\"shadow\"",
            "\"errors\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.starts_with("{\"requests\":3,\"byPod\""), "{text}");
        let back: RouteReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn the_minimal_shape_deserialises() {
        let r: RouteReport = serde_json::from_str(
            r#"{"requests": 5, "byPod": {"a": 5}, "byVersion": {"none": 5}, "byPodTemplateHash": {"none": 5},
                "shadow": {"byPod": {}, "byVersion": {}}, "errors": {}}"#,
        )
        .unwrap();
        assert_eq!(r.version("none"), 5);
        assert_eq!(r.total_errors(), 0);
    }

    #[test]
    fn table_lists_each_section_with_shares() {
        let mut r = RouteReport {
            requests: 4,
            ..Default::default()
        };
        let v1 = PodRef {
            name: "web-1".into(),
            version: "v1".into(),
            hash: "h1".into(),
        };
        for _ in 0..3 {
            r.served(&v1, "web");
        }
        r.failed(503, "no ready pods for Service web");
        let t = r.to_table();
        assert!(t.contains("REQUESTS: 4"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("web-1") && l.ends_with("75.0%")),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| l.starts_with("503") && l.ends_with("25.0%")),
            "{t}"
        );
        assert!(t.contains("503 no ready pods for Service web"), "{t}");
        assert!(!t.contains("SHADOW"), "{t}");
    }
}
