//! Fault injection and request accounting, for reliability tests and benchmarks.
//!
//! - [`Faults`]: rules that fail a share of matching requests (500, 429 with `Retry-After`,
//!   409), add latency, end matching watch streams every N seconds, or fail exactly the Nth
//!   write of a user agent. Served at `/sim/v1/faults` (`POST` adds, `GET` lists, `DELETE`
//!   clears) and reachable from Rust as [`crate::Server::faults`].
//! - [`Stats`]: request counts by user agent, verb, resource and status code. Served at
//!   `/sim/v1/stats` (`GET`; `DELETE` or `POST /sim/v1/stats/reset` resets) and reachable as
//!   [`crate::Server::stats`].
//!
//! Every Kubernetes API request is counted (discovery and `/version` too, with the path as the
//! resource); `/sim/` requests are not. Faults only apply to resource requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::ApiError;

/// The Kubernetes verbs a request can have.
pub const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// What a request is, as far as faults and accounting care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The `User-Agent` header (empty when absent).
    pub user_agent: String,
    /// One of [`VERBS`].
    pub verb: String,
    /// `group/resource[/subresource]` (`pods`, `apps/deployments/status`) for resource
    /// requests; the path (`/apis`, `/version`) otherwise.
    pub resource: String,
    /// The subresource (`status`, `scale`), if any.
    pub subresource: Option<String>,
    /// Whether this is a request on a resource (`/api/v1/...`, `/apis/g/v/...`).
    pub is_resource: bool,
}

impl RequestInfo {
    /// Classifies a request from its method, path and query.
    pub fn classify(method: &Method, path: &str, query: Option<&str>, user_agent: &str) -> Self {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest): (&str, &[&str]) = match segs.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (group, rest),
            _ => (
                "",
                &[] as &[&str], // non-resource request
            ),
        };
        let watch_query = query.is_some_and(|q| {
            q.split('&')
                .any(|p| matches!(p, "watch" | "watch=true" | "watch=1"))
        });
        if rest.is_empty() {
            return RequestInfo {
                user_agent: user_agent.to_string(),
                verb: nonresource_verb(method).to_string(),
                resource: path.to_string(),
                subresource: None,
                is_resource: false,
            };
        }
        let mut rest = rest;
        let mut watch = watch_query;
        if rest.first() == Some(&"watch") {
            watch = true;
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces")
            && rest.len() >= 3
            && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
        {
            rest = &rest[2..];
        }
        let resource_name = rest.first().copied().unwrap_or_default();
        let has_name = rest.len() >= 2;
        let sub = rest.get(2).copied();
        let mut resource = if group.is_empty() {
            resource_name.to_string()
        } else {
            format!("{group}/{resource_name}")
        };
        if let Some(sub) = sub {
            resource.push('/');
            resource.push_str(sub);
        }
        let verb = match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if has_name => "get",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if has_name => "delete",
            Method::DELETE => "deletecollection",
            _ => "unknown",
        };
        RequestInfo {
            user_agent: user_agent.to_string(),
            verb: verb.to_string(),
            resource,
            subresource: sub.map(str::to_string),
            is_resource: true,
        }
    }

    /// Whether the verb writes (create, update, patch, delete, deletecollection).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

fn nonresource_verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

// ----- rules ---------------------------------------------------------------------------------

/// One fault rule. The match fields are optional (absent matches everything); at least one
/// effect must be given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Assigned when the rule is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Match: one of [`VERBS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// Match: `group/resource` (`pods`, `apps/deployments`); also matches its subresources.
    /// A full `apps/deployments/status` matches only that subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Match: a substring of the `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Effect: fail this share (0..=1) of matching requests with `code`. Deterministic: of
    /// the first n matching requests, exactly `floor(n * fraction)` fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// Effect: fail exactly the Nth matching write (create/update/patch/delete), once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_nth_write: Option<u64>,
    /// The failure: 500 (InternalError, the default), 429 (TooManyRequests) or 409 (Conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// `Retry-After` of a 429, in seconds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
    /// Effect: delay matching requests by this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Effect: matching watch streams end cleanly after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_watch_every_seconds: Option<u64>,
}

impl FaultRule {
    /// Checks the fields; the error names the offending one.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(v) = &self.verb
            && !VERBS.contains(&v.as_str())
        {
            return Err(format!(
                "fault rule: verb: unsupported value {v:?} (expected one of {})",
                VERBS.join(", ")
            ));
        }
        if let Some(f) = self.fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(format!("fault rule: fraction: {f} is not between 0 and 1"));
        }
        if self.fail_nth_write == Some(0) {
            return Err("fault rule: failNthWrite: must be at least 1".into());
        }
        if self.fraction.is_some() && self.fail_nth_write.is_some() {
            return Err("fault rule: fraction and failNthWrite cannot be combined".into());
        }
        if let Some(c) = self.code
            && !matches!(c, 500 | 429 | 409)
        {
            return Err(format!(
                "fault rule: code: unsupported value {c} (expected 500, 429 or 409)"
            ));
        }
        if (self.code.is_some() || self.retry_after_seconds.is_some())
            && self.fraction.is_none()
            && self.fail_nth_write.is_none()
        {
            return Err("fault rule: code/retryAfterSeconds need fraction or failNthWrite".into());
        }
        if self.close_watch_every_seconds == Some(0) {
            return Err("fault rule: closeWatchEverySeconds: must be at least 1".into());
        }
        if self.fraction.is_none()
            && self.fail_nth_write.is_none()
            && self.latency_ms.is_none()
            && self.close_watch_every_seconds.is_none()
        {
            return Err("fault rule: no effect (give fraction, failNthWrite, latencyMs or closeWatchEverySeconds)".into());
        }
        Ok(())
    }

    fn matches(&self, r: &RequestInfo) -> bool {
        if !r.is_resource {
            return false;
        }
        if let Some(v) = &self.verb
            && *v != r.verb
        {
            return false;
        }
        if let Some(res) = &self.resource {
            let base = match &r.subresource {
                Some(sub) => r
                    .resource
                    .strip_suffix(sub.as_str())
                    .and_then(|b| b.strip_suffix('/'))
                    .unwrap_or(&r.resource),
                None => &r.resource,
            };
            if r.resource != *res && base != res {
                return false;
            }
        }
        if let Some(ua) = &self.user_agent
            && !r.user_agent.contains(ua.as_str())
        {
            return false;
        }
        true
    }

    /// The error a triggered rule answers with.
    pub fn error(&self) -> ApiError {
        match self.code.unwrap_or(500) {
            429 => {
                let secs = self.retry_after_seconds.unwrap_or(1);
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    "injected fault: too many requests, please try again later",
                );
                e.retry_after_seconds = Some(secs);
                e
            }
            409 => ApiError::new(
                409,
                "Conflict",
                "injected fault: the object has been modified; please apply your changes to the latest version and try again",
            ),
            _ => ApiError::new(500, "InternalError", "injected fault: internal error"),
        }
    }
}

/// A rule with its counters, as listed by `GET /sim/v1/faults`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleState {
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Requests the rule matched.
    pub matched: u64,
    /// Matching writes (for `failNthWrite`).
    pub writes: u64,
    /// Requests the rule failed.
    pub failed: u64,
}

/// What to do with one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Delay before answering (the sum over matching rules).
    pub latency: Duration,
    /// Answer with this error instead of serving the request.
    pub error: Option<ApiError>,
    /// End a watch stream after this long (the shortest over matching rules).
    pub close_watch_after: Option<Duration>,
}

/// The fault rules of a server. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultsInner>>,
}

#[derive(Debug, Default)]
struct FaultsInner {
    next_id: u64,
    rules: Vec<RuleState>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates and adds a rule; returns its id.
    pub fn add(&self, mut rule: FaultRule) -> Result<u64, String> {
        rule.validate()?;
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        rule.id = Some(id);
        inner.rules.push(RuleState {
            rule,
            matched: 0,
            writes: 0,
            failed: 0,
        });
        Ok(id)
    }

    /// The rules with their counters.
    pub fn list(&self) -> Vec<RuleState> {
        self.lock().rules.clone()
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Decides what happens to a request and advances the rules' counters. The first
    /// matching rule that fails the request wins.
    pub fn decide(&self, r: &RequestInfo) -> Decision {
        let mut d = Decision::default();
        let mut inner = self.lock();
        for st in inner.rules.iter_mut() {
            if !st.rule.matches(r) {
                continue;
            }
            st.matched += 1;
            if let Some(ms) = st.rule.latency_ms {
                d.latency += Duration::from_millis(ms);
            }
            if let Some(s) = st.rule.close_watch_every_seconds
                && r.verb == "watch"
            {
                let after = Duration::from_secs(s);
                d.close_watch_after = Some(d.close_watch_after.map_or(after, |a| a.min(after)));
            }
            if d.error.is_some() {
                continue;
            }
            let fail = if let Some(f) = st.rule.fraction {
                let n = st.matched as f64;
                (n * f).floor() > ((n - 1.0) * f).floor()
            } else if let Some(nth) = st.rule.fail_nth_write {
                if r.is_write() {
                    st.writes += 1;
                    st.writes == nth
                } else {
                    false
                }
            } else {
                false
            };
            if fail {
                st.failed += 1;
                d.error = Some(st.rule.error());
            }
        }
        d
    }
}

// ----- accounting ----------------------------------------------------------------------------

/// One row of [`Stats::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsRow {
    /// `User-Agent`.
    pub user_agent: String,
    /// One of [`VERBS`].
    pub verb: String,
    /// See [`RequestInfo::resource`].
    pub resource: String,
    /// HTTP status code of the answer.
    pub code: u16,
    /// Number of requests.
    pub count: u64,
}

/// Counts of requests, as served by `GET /sim/v1/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Rows sorted by user agent, verb, resource, code.
    pub requests: Vec<StatsRow>,
    /// Sum of all counts.
    pub total: u64,
}

impl StatsSnapshot {
    /// Sum of the counts of rows for which `f` holds.
    pub fn count(&self, f: impl Fn(&StatsRow) -> bool) -> u64 {
        self.requests.iter().filter(|r| f(r)).map(|r| r.count).sum()
    }
}

type StatsKey = (String, String, String, u16);

/// Request counts by user agent, verb, resource and code. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    inner: Arc<Mutex<BTreeMap<StatsKey, u64>>>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<StatsKey, u64>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one answered request.
    pub fn record(&self, r: &RequestInfo, code: u16) {
        *self
            .lock()
            .entry((
                r.user_agent.clone(),
                r.verb.clone(),
                r.resource.clone(),
                code,
            ))
            .or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> StatsSnapshot {
        let map = self.lock();
        let requests: Vec<StatsRow> = map
            .iter()
            .map(|((ua, verb, resource, code), count)| StatsRow {
                user_agent: ua.clone(),
                verb: verb.clone(),
                resource: resource.clone(),
                code: *code,
                count: *count,
            })
            .collect();
        let total = requests.iter().map(|r| r.count).sum();
        StatsSnapshot { requests, total }
    }

    /// Forgets all counts.
    pub fn reset(&self) {
        self.lock().clear();
    }
}

// ----- HTTP ----------------------------------------------------------------------------------

#[derive(Clone)]
struct SimState {
    faults: Faults,
    stats: Stats,
}

/// The `/sim/v1/faults` and `/sim/v1/stats` endpoints.
pub fn router(faults: Faults, stats: Stats) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route(
            "/sim/v1/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/sim/v1/stats", get(get_stats).delete(reset_stats))
        .route("/sim/v1/stats/reset", post(reset_stats))
        .with_state(SimState { faults, stats })
}

fn bad_request(message: String) -> Response {
    crate::server::error_response(&ApiError::new(400, "BadRequest", message))
}

async fn list_faults(State(s): State<SimState>) -> Response {
    axum::Json(json!({"rules": s.faults.list()})).into_response()
}

async fn add_fault(State(s): State<SimState>, body: bytes::Bytes) -> Response {
    let rule = match parse_rule(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    match s.faults.add(rule) {
        Ok(id) => {
            let rule = s.faults.list().into_iter().find(|r| r.rule.id == Some(id));
            (StatusCode::CREATED, axum::Json(json!(rule))).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// Parses a rule; a wrongly typed field is named in the error.
pub fn parse_rule(body: &[u8]) -> Result<FaultRule, String> {
    serde_json::from_slice::<FaultRule>(body).map_err(|e| {
        // serde names unknown fields but not wrongly typed ones: find the culprit.
        let culprit = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
            .ok()
            .and_then(|map| {
                map.into_iter().find(|(k, v)| {
                    let one =
                        serde_json::Value::Object([(k.clone(), v.clone())].into_iter().collect());
                    serde_json::from_value::<FaultRule>(one).is_err()
                })
            });
        match culprit {
            Some((field, _)) => format!("invalid fault rule: {field}: {e}"),
            None => format!("invalid fault rule: {e}"),
        }
    })
}

async fn clear_faults(State(s): State<SimState>) -> Response {
    s.faults.clear();
    axum::Json(json!({"rules": []})).into_response()
}

async fn get_stats(State(s): State<SimState>) -> Response {
    axum::Json(s.stats.snapshot()).into_response()
}

async fn reset_stats(State(s): State<SimState>) -> Response {
    s.stats.reset();
    axum::Json(StatsSnapshot::default()).into_response()
}

/// The answer to a request failed by a rule (with `Retry-After` for a 429).
pub fn fault_response(e: &ApiError) -> Response {
    let mut r = crate::server::error_response(e);
    if let Some(secs) = e.retry_after_seconds
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Ends a (watch) response body cleanly after `after`, between chunks.
pub fn close_body_after(r: Response, after: Duration) -> Response {
    let (parts, body) = r.into_parts();
    let stream = body
        .into_data_stream()
        .take_until(tokio::time::sleep(after));
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, query: Option<&str>, ua: &str) -> RequestInfo {
        RequestInfo::classify(&method, path, query, ua)
    }

    #[test]
    fn classifies_verbs_and_resources() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/d/pods",
                None,
                "list",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d/pods/p",
                None,
                "get",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/pods",
                Some("watch=true&x=1"),
                "watch",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/d/pods",
                None,
                "watch",
                "pods",
            ),
            (
                Method::POST,
                "/apis/apps/v1/namespaces/d/deployments",
                None,
                "create",
                "apps/deployments",
            ),
            (
                Method::PUT,
                "/apis/apps/v1/namespaces/d/deployments/x/status",
                None,
                "update",
                "apps/deployments/status",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/x/scale",
                None,
                "patch",
                "apps/deployments/scale",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/d/configmaps/c",
                None,
                "delete",
                "configmaps",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/d/configmaps",
                None,
                "deletecollection",
                "configmaps",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d",
                None,
                "get",
                "namespaces",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/d/finalize",
                None,
                "update",
                "namespaces/finalize",
            ),
        ];
        for (m, path, q, verb, resource) in cases {
            let r = req(m, path, q, "ua");
            assert_eq!(
                (r.verb.as_str(), r.resource.as_str()),
                (verb, resource),
                "{path}"
            );
            assert!(r.is_resource);
        }
        let d = req(Method::GET, "/apis/apps/v1", None, "ua");
        assert!(!d.is_resource);
        assert_eq!(
            (d.verb.as_str(), d.resource.as_str()),
            ("get", "/apis/apps/v1")
        );
    }

    #[test]
    fn a_fraction_fails_exactly_that_share_and_only_matching_requests() {
        let f = Faults::default();
        f.add(FaultRule {
            verb: Some("get".into()),
            resource: Some("configmaps".into()),
            fraction: Some(0.25),
            ..Default::default()
        })
        .unwrap();
        let get = req(Method::GET, "/api/v1/namespaces/d/configmaps/c", None, "x");
        let failed = (0..200).filter(|_| f.decide(&get).error.is_some()).count();
        assert_eq!(failed, 50);
        let list = req(Method::GET, "/api/v1/namespaces/d/configmaps", None, "x");
        let pods = req(Method::GET, "/api/v1/namespaces/d/pods/p", None, "x");
        assert!((0..20).all(|_| f.decide(&list).error.is_none()));
        assert!((0..20).all(|_| f.decide(&pods).error.is_none()));
        let st = &f.list()[0];
        assert_eq!((st.matched, st.failed), (200, 50));
    }

    #[test]
    fn resource_match_covers_subresources_but_not_other_groups() {
        let rule = FaultRule {
            resource: Some("apps/deployments".into()),
            latency_ms: Some(1),
            ..Default::default()
        };
        let yes = req(
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/x/status",
            None,
            "",
        );
        let yes2 = req(Method::GET, "/apis/apps/v1/deployments", None, "");
        let no = req(Method::GET, "/apis/apps/v1/replicasets", None, "");
        assert!(rule.matches(&yes) && rule.matches(&yes2) && !rule.matches(&no));
        let status_only = FaultRule {
            resource: Some("apps/deployments/status".into()),
            latency_ms: Some(1),
            ..Default::default()
        };
        assert!(status_only.matches(&yes) && !status_only.matches(&yes2));
        let pods = FaultRule {
            resource: Some("pods".into()),
            latency_ms: Some(1),
            ..Default::default()
        };
        assert!(pods.matches(&req(
            Method::PATCH,
            "/api/v1/namespaces/d/pods/p/status",
            None,
            ""
        )));
        assert!(!pods.matches(&req(Method::GET, "/apis/x.io/v1/podsets", None, "")));
    }

    #[test]
    fn the_nth_write_of_a_user_agent_fails_once() {
        let f = Faults::default();
        f.add(FaultRule {
            user_agent: Some("ramp".into()),
            fail_nth_write: Some(3),
            code: Some(409),
            ..Default::default()
        })
        .unwrap();
        let write = req(
            Method::POST,
            "/api/v1/namespaces/d/configmaps",
            None,
            "ramp-operator/1",
        );
        let read = req(
            Method::GET,
            "/api/v1/namespaces/d/configmaps",
            None,
            "ramp-operator/1",
        );
        let other = req(
            Method::POST,
            "/api/v1/namespaces/d/configmaps",
            None,
            "kubectl",
        );
        let mut outcomes = vec![];
        for _ in 0..5 {
            assert!(f.decide(&read).error.is_none());
            assert!(f.decide(&other).error.is_none());
            outcomes.push(f.decide(&write).error.map(|e| e.reason));
        }
        assert_eq!(outcomes, vec![None, None, Some("Conflict"), None, None]);
    }

    #[test]
    fn errors_carry_reason_and_retry_after() {
        let mk = |code| FaultRule {
            fraction: Some(1.0),
            code: Some(code),
            retry_after_seconds: Some(7),
            ..Default::default()
        };
        assert_eq!(mk(500).error().reason, "InternalError");
        assert_eq!(mk(409).error().reason, "Conflict");
        let e = mk(429).error();
        assert_eq!(
            (e.reason, e.retry_after_seconds),
            ("TooManyRequests", Some(7))
        );
        let r = fault_response(&e);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn latency_adds_up_and_watch_close_takes_the_shortest() {
        let f = Faults::default();
        for (ms, s) in [(10, 5), (20, 2)] {
            f.add(FaultRule {
                latency_ms: Some(ms),
                close_watch_every_seconds: Some(s),
                ..Default::default()
            })
            .unwrap();
        }
        let w = req(Method::GET, "/api/v1/pods", Some("watch=1"), "");
        let d = f.decide(&w);
        assert_eq!(d.latency, Duration::from_millis(30));
        assert_eq!(d.close_watch_after, Some(Duration::from_secs(2)));
        assert!(d.error.is_none());
        let l = f.decide(&req(Method::GET, "/api/v1/pods", None, ""));
        assert_eq!(l.close_watch_after, None);
        f.clear();
        assert_eq!(f.decide(&w), Decision::default());
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let f = Faults::default();
        let cases = [
            (
                FaultRule {
                    fraction: Some(1.5),
                    ..Default::default()
                },
                "fraction",
            ),
            (
                FaultRule {
                    fraction: Some(0.5),
                    code: Some(404),
                    ..Default::default()
                },
                "code",
            ),
            (
                FaultRule {
                    verb: Some("frob".into()),
                    latency_ms: Some(1),
                    ..Default::default()
                },
                "verb",
            ),
            (
                FaultRule {
                    fail_nth_write: Some(0),
                    ..Default::default()
                },
                "failNthWrite",
            ),
            (FaultRule::default(), "no effect"),
        ];
        for (rule, field) in cases {
            let e = f.add(rule).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        assert!(f.list().is_empty());
        let parse = serde_json::from_value::<FaultRule>(json!({"fractoin": 0.5}));
        assert!(parse.unwrap_err().to_string().contains("fractoin"));
    }

    #[test]
    fn stats_count_and_reset() {
        let s = Stats::default();
        let get = req(Method::GET, "/api/v1/namespaces/d/pods/p", None, "a");
        s.record(&get, 200);
        s.record(&get, 200);
        s.record(&get, 404);
        s.record(
            &req(Method::POST, "/api/v1/namespaces/d/pods", None, "b"),
            201,
        );
        let snap = s.snapshot();
        assert_eq!(snap.total, 4);
        assert_eq!(snap.count(|r| r.user_agent == "a" && r.code == 200), 2);
        assert_eq!(
            snap.count(|r| r.verb == "create" && r.resource == "pods"),
            1
        );
        assert_eq!(snap.requests.len(), 3);
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }
}
