//! Fault injection and request accounting, for reliability tests and benchmarks.
//!
//! - [`Faults`]: rules that fail a share of matching requests (500, 429 with `Retry-After`,
//!   409), add latency (fixed, or random in a range), end matching watch streams every N
//!   seconds, fail exactly the Nth write of a user agent, or send SIGKILL to a process right
//!   after the k-th answered write of a user agent (`killAfterWrites` + `killPid`: the sim only
//!   counts, it is not told what the writes are). Served at `/sim/v1/faults` (`POST` adds,
//!   `GET` lists with the watch streams ended and how fast their clients came back, `DELETE`
//!   clears, `DELETE /sim/v1/faults/{id}` removes one) and reachable from Rust as [`crate::Server::faults`].
//! - [`Stats`]: request counts by user agent, verb, resource and status code. Served at
//!   `/sim/v1/stats` (`GET`; `DELETE` or `POST /sim/v1/stats/reset` resets) and reachable as
//!   [`crate::Server::stats`].
//! - [`WriteLog`]: every answered write in order (user agent, verb, resource, namespace, name,
//!   status), at `/sim/v1/writes` (`GET`; `DELETE` clears).
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

mod drops;
mod writes;

pub use drops::WatchDrops;
pub use writes::{WriteEntry, WriteLog};

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
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object's name in the path, if any.
    pub name: Option<String>,
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
                namespace: None,
                name: None,
                is_resource: false,
            };
        }
        let mut rest = rest;
        let mut watch = watch_query;
        if rest.first() == Some(&"watch") {
            watch = true;
            rest = &rest[1..];
        }
        let mut namespace = None;
        if rest.first() == Some(&"namespaces")
            && rest.len() >= 3
            && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
        {
            namespace = Some(rest[1].to_string());
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
            namespace,
            name: rest.get(1).map(|n| n.to_string()),
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
    /// Effect: delay matching requests by this many milliseconds (the least delay when
    /// `latencyMaxMs` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Effect: delay matching requests by a random time between `latencyMs` (or 0) and this
    /// many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max_ms: Option<u64>,
    /// Effect: right after the k-th matching write is answered (committed, its answer not
    /// yet sent), send SIGKILL to `killPid`; once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_after_writes: Option<u64>,
    /// The process `killAfterWrites` kills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_pid: Option<u32>,
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
        if let (Some(min), Some(max)) = (self.latency_ms, self.latency_max_ms)
            && max < min
        {
            return Err(format!(
                "fault rule: latencyMaxMs: {max} is less than latencyMs {min}"
            ));
        }
        if self.kill_after_writes == Some(0) {
            return Err("fault rule: killAfterWrites: must be at least 1".into());
        }
        if self.kill_after_writes.is_some() != self.kill_pid.is_some() {
            return Err("fault rule: killAfterWrites and killPid go together".into());
        }
        if self.kill_pid.is_some_and(|p| p <= 1 || p > i32::MAX as u32) {
            return Err("fault rule: killPid: not a process that can be killed".into());
        }
        if self.kill_after_writes.is_some()
            && (self.fraction.is_some() || self.fail_nth_write.is_some())
        {
            return Err(
                "fault rule: killAfterWrites cannot be combined with fraction or failNthWrite"
                    .into(),
            );
        }
        if self.close_watch_every_seconds == Some(0) {
            return Err("fault rule: closeWatchEverySeconds: must be at least 1".into());
        }
        if self.fraction.is_none()
            && self.fail_nth_write.is_none()
            && self.latency_ms.is_none()
            && self.latency_max_ms.is_none()
            && self.close_watch_every_seconds.is_none()
            && self.kill_after_writes.is_none()
        {
            return Err("fault rule: no effect (give fraction, failNthWrite, latencyMs, latencyMaxMs, closeWatchEverySeconds or killAfterWrites)".into());
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
    /// Matching writes answered (for `killAfterWrites`).
    pub answered_writes: u64,
    /// Whether `killAfterWrites` sent its SIGKILL.
    pub killed: bool,
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
    drops: WatchDrops,
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
            answered_writes: 0,
            killed: false,
        });
        Ok(id)
    }

    /// The rules with their counters.
    pub fn list(&self) -> Vec<RuleState> {
        self.lock().rules.clone()
    }

    /// Removes one rule; false when there is none with that id.
    pub fn remove(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.rules.len();
        inner.rules.retain(|r| r.rule.id != Some(id));
        inner.rules.len() != before
    }

    /// Removes all rules (and forgets the watch drops counted).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.rules.clear();
        inner.drops = WatchDrops::default();
    }

    /// Watch streams ended by `closeWatchEverySeconds` and how fast their clients came back.
    pub fn watch_drops(&self) -> WatchDrops {
        self.lock().drops.clone()
    }

    /// Called once a request has been answered (before the answer is sent): counts the
    /// writes of `killAfterWrites` rules and sends SIGKILL when one reaches its count.
    pub fn answered(&self, r: &RequestInfo) {
        if !r.is_write() {
            return;
        }
        let mut targets = vec![];
        {
            let mut inner = self.lock();
            for st in inner.rules.iter_mut() {
                let (Some(k), Some(pid)) = (st.rule.kill_after_writes, st.rule.kill_pid) else {
                    continue;
                };
                if st.killed || !st.rule.matches(r) {
                    continue;
                }
                st.answered_writes += 1;
                if st.answered_writes == k {
                    st.killed = true;
                    targets.push(pid);
                }
            }
        }
        for pid in targets {
            kill(pid, r);
        }
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
            match (st.rule.latency_ms, st.rule.latency_max_ms) {
                (min, Some(max)) => {
                    let ms = rand::random_range(min.unwrap_or(0)..=max);
                    d.latency += Duration::from_millis(ms);
                }
                (Some(ms), None) => d.latency += Duration::from_millis(ms),
                (None, None) => {}
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
        if r.verb == "watch" && d.error.is_none() {
            inner
                .drops
                .watch_started(r, std::time::Instant::now(), d.close_watch_after);
        }
        d
    }
}

/// SIGKILL to `pid` (the process a `killAfterWrites` rule names).
fn kill(pid: u32, r: &RequestInfo) {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let outcome = match target {
        Some(p) => rustix::process::kill_process(p, rustix::process::Signal::KILL)
            .map_err(|e| e.to_string()),
        None => Err("not a process id".to_string()),
    };
    match outcome {
        Ok(()) => tracing::info!(
            pid,
            verb = r.verb,
            resource = r.resource,
            name = r.name.as_deref().unwrap_or_default(),
            "injected fault: SIGKILL after a write"
        ),
        Err(e) => tracing::warn!(pid, error = %e, "injected fault: SIGKILL failed"),
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
    writes: WriteLog,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<StatsKey, u64>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log of answered writes (filled by [`Stats::record`]).
    pub fn writes(&self) -> &WriteLog {
        &self.writes
    }

    /// Counts one answered request (and logs it when it writes).
    pub fn record(&self, r: &RequestInfo, code: u16) {
        if r.is_resource && r.is_write() {
            self.writes.push(r, code);
        }
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
        .route("/sim/v1/faults/{id}", axum::routing::delete(remove_fault))
        .route("/sim/v1/stats", get(get_stats).delete(reset_stats))
        .route("/sim/v1/writes", get(get_writes).delete(clear_writes))
        .route("/sim/v1/stats/reset", post(reset_stats))
        .with_state(SimState { faults, stats })
}

fn bad_request(message: String) -> Response {
    crate::server::error_response(&ApiError::new(400, "BadRequest", message))
}

async fn list_faults(State(s): State<SimState>) -> Response {
    axum::Json(json!({"rules": s.faults.list(), "watchDrops": s.faults.watch_drops()}))
        .into_response()
}

async fn get_writes(State(s): State<SimState>) -> Response {
    axum::Json(json!({"writes": s.stats.writes.snapshot()})).into_response()
}

async fn clear_writes(State(s): State<SimState>) -> Response {
    s.stats.writes.clear();
    axum::Json(json!({"writes": []})).into_response()
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

async fn remove_fault(
    State(s): State<SimState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match id.parse::<u64>() {
        Ok(n) if s.faults.remove(n) => axum::Json(json!({"removed": n})).into_response(),
        Ok(n) => crate::server::error_response(&ApiError::new(
            404,
            "NotFound",
            format!("fault rule {n} not found"),
        )),
        Err(_) => bad_request(format!("fault rule id: {id:?} is not a number")),
    }
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
mod tests;
