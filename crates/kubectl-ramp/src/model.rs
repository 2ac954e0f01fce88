//! Pure facts about a Rollout, in the words the plugin shows: where it is,
//! what it waits for, whether it is finished, whether the operator is alive.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ramp_api::{
    CanaryStatus, CanaryStep, HttpRouteMatch, PathMatchType, Rollout, RolloutPhase, StepState,
    ValidSpec, ValueMatchType,
};

/// Seconds without status progress after which the plugin says the operator
/// is not running.
pub const OPERATOR_STALL_SECONDS: i64 = 30;

/// Environment variable overriding [`OPERATOR_STALL_SECONDS`].
pub const OPERATOR_TIMEOUT_ENV: &str = "KUBECTL_RAMP_OPERATOR_TIMEOUT";

/// The stall threshold: `$KUBECTL_RAMP_OPERATOR_TIMEOUT` seconds when set to a
/// number, else [`OPERATOR_STALL_SECONDS`].
pub fn stall_seconds(env: Option<&str>) -> i64 {
    env.and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .unwrap_or(OPERATOR_STALL_SECONDS)
}

/// The rollout's name.
pub fn name(ro: &Rollout) -> &str {
    ro.metadata.name.as_deref().unwrap_or_default()
}

/// The rollout's namespace.
pub fn namespace(ro: &Rollout) -> &str {
    ro.metadata.namespace.as_deref().unwrap_or_default()
}

/// The canary steps in the spec.
pub fn steps(ro: &Rollout) -> &[CanaryStep] {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .map(|c| c.steps.as_slice())
        .unwrap_or_default()
}

/// The phase, if the operator has written one.
pub fn phase(ro: &Rollout) -> Option<RolloutPhase> {
    ro.status.as_ref().and_then(|s| s.phase)
}

/// The canary status, if a rollout is under way or just finished.
pub fn canary(ro: &Rollout) -> Option<&CanaryStatus> {
    ro.status.as_ref().and_then(|s| s.canary_status.as_ref())
}

/// `2/3`.
pub fn step_of(ro: &Rollout, index: i32) -> String {
    format!("{index}/{}", steps(ro).len())
}

/// Where the rollout is, for messages: `step 3/3 StepUpgrade`, `Healthy`,
/// `Aborted at step 2/3`, `no status yet`.
pub fn position(ro: &Rollout) -> String {
    let Some(phase) = phase(ro) else {
        return "no status yet".into();
    };
    match (phase, canary(ro)) {
        (RolloutPhase::Progressing, Some(c)) => format!(
            "step {} {}",
            step_of(ro, c.current_step_index),
            c.current_step_state
        ),
        (RolloutPhase::Aborted, Some(c)) => {
            format!("Aborted at step {}", step_of(ro, c.current_step_index))
        }
        (p, _) => p.to_string(),
    }
}

/// What the current step state is waiting for, e.g. `waiting for 1/2 canary
/// pods to be ready`.
pub fn state_reason(ro: &Rollout, c: &CanaryStatus) -> String {
    match c.current_step_state {
        StepState::BeforeStepUpgrade => "starting the step".into(),
        StepState::StepUpgrade => format!(
            "waiting for {}/{} canary pods to be ready",
            c.canary_ready_replicas, c.canary_replicas
        ),
        StepState::StepTrafficRouting => "moving traffic for the step".into(),
        StepState::StepPaused => {
            let mut text = match pause_duration(ro, c.current_step_index) {
                Some(d) => format!("paused for {d}s before the next step"),
                None => "waiting for approval".into(),
            };
            let held = ro
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|k| k.type_ == "Progressing")
                .and_then(|k| k.reason.as_deref())
                .and_then(|r| r.strip_prefix("Analysis"));
            if let Some(why) = held {
                text.push_str(&format!("; analysis holds it ({why})"));
            }
            text
        }
        StepState::StepReady => "approved; moving to the next step".into(),
        StepState::Completed => match c.finalising_step {
            Some(f) => format!("all steps done; finishing ({f})"),
            None => "all steps done; finishing".into(),
        },
    }
}

/// `pause.duration` of step `index` (1-based); None when the step waits for approval.
pub fn pause_duration(ro: &Rollout, index: i32) -> Option<i32> {
    step_at(ro, index)
        .and_then(|s| s.pause.as_ref())
        .and_then(|p| p.duration)
}

/// Step `index` (1-based).
pub fn step_at(ro: &Rollout, index: i32) -> Option<&CanaryStep> {
    usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| steps(ro).get(i))
}

/// Seconds left in a timed pause, when the rollout is in one. Counted from
/// `canaryStatus.lastUpdateTime` (when the step entered StepPaused).
pub fn pause_remaining(ro: &Rollout, now: Timestamp) -> Option<(i64, i32)> {
    let c = canary(ro)?;
    if phase(ro) != Some(RolloutPhase::Progressing) || c.current_step_state != StepState::StepPaused
    {
        return None;
    }
    let duration = pause_duration(ro, c.current_step_index)?;
    let since = c.last_update_time.as_ref()?.0;
    let elapsed = now.as_second() - since.as_second();
    Some(((i64::from(duration) - elapsed).max(0), duration))
}

/// The Rollout's steps as ramp reads them (`None` when the spec is invalid:
/// ramp does not act on it, and the plugin then shows no routing).
pub fn valid_spec(ro: &Rollout) -> Option<ValidSpec> {
    ramp_api::validate(ro).ok()
}

/// The step whose routing is in place now: the current step once its routing
/// is applied, the previous one before that; None when no canary routing is
/// in place (not progressing, or finishing).
pub fn routed_step(ro: &Rollout) -> Option<i32> {
    let spec = valid_spec(ro)?;
    spec.routed_step(ro.status.as_ref()?).map(|(i, _)| i)
}

/// The traffic share the canary gets now, as shown in `list`: `50%`,
/// `match` (request matches only), `0%`, or `-` when no rollout is under way.
pub fn canary_weight(ro: &Rollout) -> String {
    match (phase(ro), routed_step(ro)) {
        (_, Some(i)) => step_weight(ro, i),
        (Some(RolloutPhase::Aborted), None) => "0%".into(),
        _ => "-".into(),
    }
}

/// What reaches the canary now, in words: `50% of traffic`, `requests
/// matching header version=canary`, `no traffic`.
/// A mirror step adds `+ a copy of 100% of requests (mirrored)`.
pub fn canary_traffic(ro: &Rollout) -> String {
    let spec = valid_spec(ro);
    let routing = spec.as_ref().and_then(|spec| {
        let (_, r) = spec.routed_step(ro.status.as_ref()?)?;
        r
    });
    let Some(r) = routing else {
        return "no traffic".into();
    };
    let real = match (r.weight, r.matches.is_empty()) {
        (Some(w), _) => format!("{w}% of traffic"),
        (None, false) => {
            let m: Vec<String> = r.matches.iter().map(describe_match).collect();
            format!("requests matching {}", m.join(" or "))
        }
        (None, true) => "no traffic".into(),
    };
    match r.mirror {
        Some(m) => format!("{real} + a copy of {m}% of requests (mirrored)"),
        None => real,
    }
}

/// The canary weight in force during step `index` (its own routing, or the
/// one it keeps from an earlier step): `50%`, `match` (request matches
/// only), `0%`; a mirror says so: `mirror` (copies only), `20%+mirror`.
pub fn step_weight(ro: &Rollout, index: i32) -> String {
    let spec = valid_spec(ro);
    match spec.as_ref().and_then(|s| s.routing_at(index)) {
        None => "0%".into(),
        Some(r) => match (r.weight, r.matches.is_empty(), r.mirror.is_some()) {
            (Some(w), _, false) => format!("{w}%"),
            (Some(w), _, true) => format!("{w}%+mirror"),
            (None, false, false) => "match".into(),
            (None, false, true) => "match+mirror".into(),
            (None, true, false) => "0%".into(),
            (None, true, true) => "mirror".into(),
        },
    }
}

/// Whether the rollout is done and Healthy, as far as a watcher can tell:
/// phase Healthy with the spec observed, and the workload (when read) not
/// paused and fully rolled out with its latest generation seen by both the
/// Deployment controller and ramp — so a template change the operator has not
/// picked up yet does not count as done.
pub fn finished_healthy(ro: &Rollout, workload: Option<&Deployment>) -> bool {
    if phase(ro) != Some(RolloutPhase::Healthy) {
        return false;
    }
    let behind = |seen: Option<i64>, current: Option<i64>| matches!((seen, current), (Some(s), Some(c)) if s < c);
    let observed = ro.status.as_ref().and_then(|s| s.observed_generation);
    if behind(observed, ro.metadata.generation) {
        return false;
    }
    let Some(d) = workload else {
        return true;
    };
    let generation = d.metadata.generation;
    if behind(
        canary(ro).and_then(|c| c.observed_workload_generation),
        generation,
    ) {
        return false;
    }
    let spec = d.spec.as_ref();
    if spec.and_then(|s| s.paused) == Some(true) {
        return false;
    }
    match &d.status {
        None => true,
        Some(st) => {
            let want = spec.and_then(|s| s.replicas).unwrap_or(1);
            !behind(st.observed_generation, generation) && st.updated_replicas.unwrap_or(0) >= want
        }
    }
}

/// When the operator has not kept up with the rollout for longer than
/// `stall_seconds`, a one-line explanation.
pub fn operator_stalled(ro: &Rollout, now: Timestamp, stall_seconds: i64) -> Option<String> {
    let name = name(ro);
    let ns = namespace(ro);
    let status_missing = ro.status.as_ref().is_none_or(|s| s.phase.is_none());
    if status_missing {
        let created = ro.metadata.creation_timestamp.as_ref()?.0;
        let age = now.as_second() - created.as_second();
        return (age > stall_seconds).then(|| {
            format!(
                "rollout '{name}' has no status {} after it was created: the ramp operator is not running or not watching namespace '{ns}'",
                human_duration(age)
            )
        });
    }
    let generation = ro.metadata.generation?;
    let observed = ro.status.as_ref().and_then(|s| s.observed_generation)?;
    if observed >= generation {
        return None;
    }
    // When did the spec last change? The newest managedFields entry that is
    // not a status write; the creation time when there are none.
    let changed = ro
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref().unwrap_or_default() != "status")
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| ro.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let since = now.as_second() - changed.as_second();
    (since > stall_seconds).then(|| {
        format!(
            "rollout '{name}' changed {} ago (generation {generation}) but the ramp operator has not acted on it (status.observedGeneration {observed}): is the operator running?",
            human_duration(since)
        )
    })
}

/// How a step's canary replicas read: `1`, `50%`.
/// The current step's analysis records, in spec order.
pub fn current_analysis(ro: &Rollout) -> Vec<&ramp_api::MetricAnalysisStatus> {
    let Some(c) = canary(ro) else {
        return Vec::new();
    };
    c.analysis
        .iter()
        .filter(|r| r.step_index == c.current_step_index)
        .collect()
}

/// Metrics of the current step whose last measurement failed.
pub fn failing_metrics(ro: &Rollout) -> Vec<&ramp_api::MetricAnalysisStatus> {
    current_analysis(ro)
        .into_iter()
        .filter(|r| r.phase == Some(ramp_api::MeasurementPhase::Failed))
        .collect()
}

/// One analysis record in words: `request-success-rate 70.5 (range >= 99)`.
pub fn metric_text(r: &ramp_api::MetricAnalysisStatus) -> String {
    let value = r.last_value.map_or_else(|| "-".to_string(), show_number);
    format!("{} {value} (range {})", r.name, r.threshold_range)
}

/// A number as the operator writes it in messages.
pub fn show_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The Rollout's `spec.strategy.canary.analysis`, if it has one.
pub fn analysis_spec(ro: &Rollout) -> Option<&ramp_api::RolloutAnalysis> {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.analysis.as_ref())
}

/// The `list` ANALYSIS column: `-` without analysis; the worst phase of
/// the current step's metrics with how many share it (`2/2 Passed`,
/// `1/2 Failed`), or `pending` before the first measurement.
pub fn analysis_column(ro: &Rollout) -> String {
    use ramp_api::MeasurementPhase::*;
    let Some(a) = analysis_spec(ro) else {
        return "-".into();
    };
    let total = a.metrics.len();
    let in_flight = matches!(
        phase(ro),
        Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
    );
    let records = current_analysis(ro);
    if !in_flight || records.is_empty() {
        return format!("{total} metrics");
    }
    for p in [Failed, Error, NoData, Passed] {
        let n = records.iter().filter(|r| r.phase == Some(p)).count();
        if n > 0 {
            return format!("{n}/{total} {p}");
        }
    }
    "pending".into()
}

pub fn replicas_text(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// One step in words: `replicas 50% · traffic 50% · until approved`.
pub fn describe_step(step: &CanaryStep) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &step.replicas {
        parts.push(format!("replicas {}", replicas_text(r)));
    }
    if let Some(t) = &step.traffic {
        parts.push(format!("traffic {t}"));
    }
    if !step.matches.is_empty() {
        let m: Vec<String> = step.matches.iter().map(describe_match).collect();
        parts.push(format!("match {}", m.join(" or ")));
    }
    if let Some(m) = &step.mirror {
        parts.push(format!("mirror {}%", m.percent));
    }
    match step.pause.as_ref().and_then(|p| p.duration) {
        Some(d) => parts.push(format!("pause {d}s")),
        None => parts.push("until approved".into()),
    }
    parts.join(" · ")
}

/// One request match: `header version=canary & path /api*`.
pub fn describe_match(m: &HttpRouteMatch) -> String {
    let mut conds = Vec::new();
    for h in &m.headers {
        let op = match h.type_.unwrap_or_default() {
            ValueMatchType::Exact => "=",
            ValueMatchType::RegularExpression => "~",
        };
        conds.push(format!("header {}{op}{}", h.name, h.value));
    }
    for q in &m.query_params {
        let op = match q.type_.unwrap_or_default() {
            ValueMatchType::Exact => "=",
            ValueMatchType::RegularExpression => "~",
        };
        conds.push(format!("query {}{op}{}", q.name, q.value));
    }
    if let Some(p) = &m.path {
        conds.push(match p.type_.unwrap_or_default() {
            PathMatchType::Exact => format!("path {}", p.value),
            PathMatchType::PathPrefix => format!("path {}*", p.value),
            PathMatchType::RegularExpression => format!("path ~{}", p.value),
        });
    }
    conds.join(" & ")
}

/// kubectl's short durations: `45s`, `3m12s`, `25m`, `5h3m`, `2d4h`, `400d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "<invalid>".into();
    }
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86400);
    if seconds < 120 {
        format!("{seconds}s")
    } else if m < 10 {
        match seconds % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        let y = d / 365;
        match d % 365 {
            0 => format!("{y}y"),
            dd if y < 8 => format!("{y}y{dd}d"),
            _ => format!("{y}y"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn rollout(status: serde_json::Value) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "rollouts.ramp.dev/v1beta1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "generation": 4,
                         "creationTimestamp": "2026-03-01T11:00:00Z"},
            "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "strategy": {"canary": {"steps": [{"replicas": 1}, {"replicas": 2}],
                         "trafficRoutings": [{"service": "web", "customNetworkRefs": [
                             {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "web"}]}]}}},
            "status": status,
        }))
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// What ramp does with a step that changes only replicas: the previous
    /// step's traffic stays in force (the planner keeps it, the operator's
    /// weight metric reports it), so `list` and `status` must say so too.
    #[test]
    fn a_replicas_only_step_shows_the_traffic_it_keeps() {
        let mut ro = rollout(serde_json::json!({
            "phase": "Progressing",
            "canaryStatus": {"currentStepIndex": 2, "currentStepState": "StepPaused"},
        }));
        let canary = ro.spec.strategy.canary.as_mut().unwrap();
        canary.steps[0].traffic = Some("50%".into());
        assert_eq!(canary_weight(&ro), "50%");
        assert_eq!(step_weight(&ro, 2), "50%");
        assert_eq!(canary_traffic(&ro), "50% of traffic");
    }

    #[test]
    fn a_mirror_step_is_described_with_its_percent() {
        let mut ro = rollout(serde_json::json!({
            "phase": "Progressing",
            "canaryStatus": {"currentStepIndex": 1, "currentStepState": "StepPaused"},
        }));
        let canary = ro.spec.strategy.canary.as_mut().unwrap();
        canary.steps[0].mirror = Some(ramp_api::TrafficMirror { percent: 100 });
        canary.steps[1].traffic = Some("20%".into());
        let steps = &ro.spec.strategy.canary.as_ref().unwrap().steps;
        assert_eq!(
            describe_step(&steps[0]),
            "replicas 1 · mirror 100% · until approved"
        );
        assert_eq!(
            describe_step(&steps[1]),
            "replicas 2 · traffic 20% · until approved"
        );
        assert_eq!(
            canary_traffic(&ro),
            "no traffic + a copy of 100% of requests (mirrored)"
        );
    }

    #[test]
    fn no_status_long_after_creation_means_no_operator() {
        let ro = rollout(serde_json::Value::Null);
        assert_eq!(operator_stalled(&ro, ts("2026-03-01T11:00:20Z"), 30), None);
        assert_eq!(
            operator_stalled(&ro, ts("2026-03-01T11:02:00Z"), 30).as_deref(),
            Some(
                "rollout 'web' has no status 2m after it was created: the ramp operator is not running or not watching namespace 'shop'"
            )
        );
    }

    #[test]
    fn an_unobserved_spec_change_is_timed_from_managed_fields() {
        let mut ro = rollout(serde_json::json!({"observedGeneration": 3, "phase": "Progressing"}));
        let entry = |sub: Option<&str>, t: &str| ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            subresource: sub.map(str::to_string),
            time: Some(Time(ts(t))),
            ..Default::default()
        };
        ro.metadata.managed_fields = Some(vec![
            entry(None, "2026-03-01T11:50:00Z"),
            // Status writes do not count as spec changes.
            entry(Some("status"), "2026-03-01T11:59:59Z"),
        ]);
        assert_eq!(operator_stalled(&ro, ts("2026-03-01T11:50:10Z"), 30), None);
        assert_eq!(
            operator_stalled(&ro, ts("2026-03-01T12:00:00Z"), 30).as_deref(),
            Some(
                "rollout 'web' changed 10m ago (generation 4) but the ramp operator has not acted on it (status.observedGeneration 3): is the operator running?"
            )
        );
        let current = rollout(serde_json::json!({"observedGeneration": 4, "phase": "Progressing"}));
        assert_eq!(
            operator_stalled(&current, ts("2026-03-02T00:00:00Z"), 30),
            None
        );
    }

    #[test]
    fn healthy_counts_as_finished_only_once_the_workload_has_rolled_out() {
        let ro = rollout(
            serde_json::json!({"observedGeneration": 4, "phase": "Healthy",
            "canaryStatus": {"observedWorkloadGeneration": 7, "currentStepIndex": 2, "currentStepState": "Completed"}}),
        );
        let d = |generation: i64, paused: bool, updated: i32| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "generation": generation},
                "spec": {"replicas": 3, "paused": paused, "selector": {}, "template": {}},
                "status": {"observedGeneration": generation, "updatedReplicas": updated},
            }))
            .unwrap()
        };
        assert!(finished_healthy(&ro, Some(&d(7, false, 3))));
        assert!(finished_healthy(&ro, None));
        // A template change ramp has not seen yet.
        assert!(!finished_healthy(&ro, Some(&d(8, false, 3))));
        // Still paused, or not fully rolled out.
        assert!(!finished_healthy(&ro, Some(&d(7, true, 3))));
        assert!(!finished_healthy(&ro, Some(&d(7, false, 2))));
        // The Rollout spec changed and the operator has not looked yet.
        let behind = rollout(serde_json::json!({"observedGeneration": 3, "phase": "Healthy"}));
        assert!(!finished_healthy(&behind, None));
        let progressing =
            rollout(serde_json::json!({"observedGeneration": 4, "phase": "Progressing"}));
        assert!(!finished_healthy(&progressing, None));
    }

    #[test]
    fn kubectl_style_ages() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(25 * 60 + 3), "25m");
        assert_eq!(human_duration(5 * 3600 + 3 * 60), "5h3m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(2 * 86400 + 4 * 3600), "2d4h");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(-3), "<invalid>");
    }
}
