//! What the pages show, as JSON built from the snapshot (pure). The words and
//! numbers come from [`crate::model`], as in `kubectl ramp list`/`status`.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use ramp_api::names::{canary_service_name, canary_workload_name};
use ramp_api::{Rollout, RolloutPhase};
use serde_json::{Value, json};

use super::state::{Key, Snapshot};
use crate::actions::Action;
use crate::model;

/// The list page's row for a Rollout (the columns of `kubectl ramp list`).
pub fn row(ro: &Rollout) -> Value {
    let c = model::canary(ro);
    let in_flight = matches!(
        model::phase(ro),
        Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
    );
    json!({
        "namespace": model::namespace(ro),
        "name": model::name(ro),
        "phase": model::phase(ro).map(|p| p.to_string()),
        "paused": ro.spec.strategy.paused,
        "step": c.map(|c| model::step_of(ro, c.current_step_index)),
        "stepIndex": c.map(|c| c.current_step_index),
        "steps": model::steps(ro).len(),
        "state": c.map(|c| c.current_step_state.to_string()),
        "weight": model::canary_weight(ro),
        "ready": c.filter(|_| in_flight).map(|c| format!("{}/{}", c.canary_ready_replicas, c.canary_replicas)),
        "analysis": model::analysis_column(ro),
        "created": ro.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        "message": ro.status.as_ref().and_then(|s| s.message.clone()),
    })
}

/// The list page: every Rollout, sorted by namespace and name.
pub fn list(snap: &Snapshot, now: Timestamp) -> Value {
    let rollouts: Vec<Value> = snap.rollouts.values().map(row).collect();
    json!({
        "now": now.to_string(),
        "rollouts": rollouts,
        "errors": snap.watch_errors.values().collect::<Vec<_>>(),
    })
}

fn role(name: &str, stable: &str, canary: &str) -> &'static str {
    // Hosts may be written `svc`, `svc.ns`, `svc.ns.svc.cluster.local`.
    let short = name.split('.').next().unwrap_or(name);
    if short == canary {
        "canary"
    } else if short == stable {
        "stable"
    } else {
        "other"
    }
}

fn string_match(v: &Value) -> String {
    for (k, op) in [("exact", "="), ("prefix", " prefix "), ("regex", "~")] {
        if let Some(s) = v.get(k).and_then(Value::as_str) {
            return format!("{op}{s}");
        }
    }
    format!("={v}")
}

/// A VirtualService's `http` routes, as rules of the traffic picture.
fn virtual_service_rules(spec: &Value, stable: &str, canary: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for route in spec["http"].as_array().into_iter().flatten() {
        let mut matches = Vec::new();
        for m in route["match"].as_array().into_iter().flatten() {
            let mut conds = Vec::new();
            for (h, v) in m["headers"].as_object().into_iter().flatten() {
                conds.push(format!("header {h}{}", string_match(v)));
            }
            for (q, v) in m["queryParams"].as_object().into_iter().flatten() {
                conds.push(format!("query {q}{}", string_match(v)));
            }
            if m["uri"].is_object() {
                conds.push(format!("path{}", string_match(&m["uri"])));
            }
            matches.push(conds.join(" & "));
        }
        let dests = route["route"].as_array().cloned().unwrap_or_default();
        let backends: Vec<Value> = dests
            .iter()
            .map(|d| {
                let host = d["destination"]["host"].as_str().unwrap_or_default();
                let share = match d["weight"].as_i64() {
                    Some(w) => w,
                    // Istio: one destination without a weight gets everything.
                    None if dests.len() == 1 => 100,
                    None => 0,
                };
                json!({"name": host, "share": share, "role": role(host, stable, canary)})
            })
            .collect();
        let mirror = route["mirror"]["host"].as_str().map(|h| {
            let pct = route["mirrorPercentage"]["value"]
                .as_f64()
                .or_else(|| route["mirrorPercent"].as_f64())
                .unwrap_or(100.0);
            json!({"name": h, "percent": pct, "role": role(h, stable, canary)})
        });
        rules.push(json!({"matches": matches, "backends": backends, "mirror": mirror}));
    }
    rules
}

/// An HTTPRoute's rules, as rules of the traffic picture.
fn http_route_rules(spec: &Value, stable: &str, canary: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let mut matches = Vec::new();
        for m in rule["matches"].as_array().into_iter().flatten() {
            let mut conds = Vec::new();
            for h in m["headers"].as_array().into_iter().flatten() {
                let op = if h["type"] == "RegularExpression" {
                    "~"
                } else {
                    "="
                };
                conds.push(format!(
                    "header {}{op}{}",
                    h["name"].as_str().unwrap_or_default(),
                    h["value"].as_str().unwrap_or_default()
                ));
            }
            for q in m["queryParams"].as_array().into_iter().flatten() {
                conds.push(format!(
                    "query {}={}",
                    q["name"].as_str().unwrap_or_default(),
                    q["value"].as_str().unwrap_or_default()
                ));
            }
            if let Some(p) = m["path"]["value"].as_str() {
                // Gateway API adds a `/` PathPrefix match by default: not worth showing.
                if !(p == "/" && m["path"]["type"] != "Exact") {
                    conds.push(format!("path {p}"));
                }
            }
            let c = conds.join(" & ");
            if !c.is_empty() {
                matches.push(c);
            }
        }
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        let weight = |b: &Value| b["weight"].as_i64().unwrap_or(1);
        let total: i64 = refs.iter().map(weight).sum();
        let backends: Vec<Value> = refs
            .iter()
            .map(|b| {
                let name = b["name"].as_str().unwrap_or_default();
                let share = if total > 0 {
                    (weight(b) * 100 + total / 2) / total
                } else {
                    0
                };
                json!({"name": name, "share": share, "role": role(name, stable, canary)})
            })
            .collect();
        let mirror = rule["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["type"] == "RequestMirror")
            .and_then(|f| {
                let m = &f["requestMirror"];
                let name = m["backendRef"]["name"].as_str()?;
                let pct = m["percent"].as_f64().unwrap_or_else(|| {
                    match (
                        m["fraction"]["numerator"].as_f64(),
                        m["fraction"]["denominator"].as_f64(),
                    ) {
                        (Some(n), Some(d)) if d > 0.0 => n * 100.0 / d,
                        (Some(n), None) => n,
                        _ => 100.0,
                    }
                });
                Some(json!({"name": name, "percent": pct, "role": role(name, stable, canary)}))
            });
        rules.push(json!({"matches": matches, "backends": backends, "mirror": mirror}));
    }
    rules
}

/// A routing object as the page shows it: its rules (matches, backends
/// with their shares and roles, mirror), drawn from the object itself.
pub fn routing(obj: &Value, stable: &str, canary: &str) -> Value {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let spec = &obj["spec"];
    let rules = match kind {
        "VirtualService" => virtual_service_rules(spec, stable, canary),
        "HTTPRoute" => http_route_rules(spec, stable, canary),
        _ => Vec::new(),
    };
    json!({
        "kind": kind,
        "apiVersion": obj["apiVersion"],
        "name": obj["metadata"]["name"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
        "hosts": spec["hosts"].as_array().cloned().or_else(|| spec["hostnames"].as_array().cloned()).unwrap_or_default(),
        "gateways": spec["gateways"].as_array().cloned().unwrap_or_else(|| {
            spec["parentRefs"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).map(Value::from).collect()
        }),
        "rules": rules,
    })
}

fn deployment(d: &Deployment, role: &str) -> Value {
    let spec = d.spec.as_ref();
    let st = d.status.as_ref();
    let containers = spec
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    let images: Vec<String> = containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect();
    let env: Vec<String> = containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    let conditions: Vec<Value> = st
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| json!({"type": c.type_, "status": c.status, "reason": c.reason, "message": c.message}))
        .collect();
    json!({
        "name": d.metadata.name,
        "role": role,
        "replicas": spec.and_then(|s| s.replicas),
        "ready": st.and_then(|s| s.ready_replicas).unwrap_or(0),
        "updated": st.and_then(|s| s.updated_replicas).unwrap_or(0),
        "available": st.and_then(|s| s.available_replicas).unwrap_or(0),
        "paused": spec.and_then(|s| s.paused).unwrap_or(false),
        "images": images,
        "env": env,
        "conditions": conditions,
    })
}

fn service(s: &Service, role: &str) -> Value {
    let spec = s.spec.as_ref();
    json!({
        "name": s.metadata.name,
        "role": role,
        "selector": spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
        "ports": spec.and_then(|s| s.ports.as_ref()).into_iter().flatten()
            .map(|p| format!("{}{}", p.port, p.target_port.as_ref().map(|t| format!("→{}", model::replicas_text(t))).unwrap_or_default()))
            .collect::<Vec<_>>(),
    })
}

/// The rollout page.
pub fn rollout(snap: &Snapshot, key: &Key, now: Timestamp, read_only: bool) -> Option<Value> {
    let ro = snap.rollouts.get(key)?;
    let (ns, _) = key;
    let c = model::canary(ro);
    let current = c.map(|c| c.current_step_index).unwrap_or(0);
    let phase = model::phase(ro);
    let in_flight = phase == Some(RolloutPhase::Progressing);
    let steps: Vec<Value> = model::steps(ro)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = i32::try_from(i + 1).unwrap_or(i32::MAX);
            json!({
                "n": n,
                "text": model::describe_step(s),
                "weight": model::step_weight(ro, n),
                "current": in_flight && n == current,
                "done": in_flight && n < current,
            })
        })
        .collect();
    let countdown = model::pause_remaining(ro, now)
        .map(|(left, total)| json!({"remaining": left, "duration": total}));
    let metrics: Vec<Value> = model::analysis_spec(ro)
        .map(|a| a.metrics.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let rec = model::current_analysis(ro)
                .into_iter()
                .find(|r| r.name == m.name);
            let history: Vec<&super::state::Point> = snap
                .history
                .get(&(key.clone(), m.name.clone()))
                .into_iter()
                .flatten()
                .collect();
            json!({
                "name": m.name,
                "min": m.threshold_range.min,
                "max": m.threshold_range.max,
                "range": m.threshold_range.to_string(),
                "phase": rec.and_then(|r| r.phase).map(|p| p.to_string()),
                "value": rec.and_then(|r| r.last_value),
                "samples": rec.and_then(|r| r.last_samples),
                "consecutiveFailures": rec.map(|r| r.consecutive_failures),
                "lastError": rec.and_then(|r| r.last_error.clone()),
                "text": rec.map(model::metric_text),
                "history": history,
            })
        })
        .collect();
    let workload = &ro.spec.workload_ref.name;
    let canary_workload = canary_workload_name(workload);
    let mut deployments = Vec::new();
    for (name, role) in [(workload.clone(), "stable"), (canary_workload, "canary")] {
        if let Some(d) = snap.deployments.get(&(ns.clone(), name)) {
            deployments.push(deployment(d, role));
        }
    }
    let mut services = Vec::new();
    let mut routing_out = Vec::new();
    if let Some(r) = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routings.first())
    {
        let stable = r.service.clone();
        let canary = canary_service_name(&stable);
        for (name, role) in [(stable.clone(), "stable"), (canary.clone(), "canary")] {
            if let Some(s) = snap.services.get(&(ns.clone(), name)) {
                services.push(service(s, role));
            }
        }
        for rref in r.routing_refs() {
            match snap
                .routing
                .get(&(rref.kind.clone(), ns.clone(), rref.name.clone()))
            {
                Some(obj) => routing_out.push(routing(obj, &stable, &canary)),
                None => routing_out.push(json!({
                    "kind": rref.kind, "name": rref.name, "apiVersion": rref.api_version,
                    "missing": true, "rules": [],
                })),
            }
        }
    }
    let canary_pods: Vec<&super::state::PodRow> = snap
        .pods
        .iter()
        .filter(|((pns, _), p)| pns == ns && p.rollout == key.1)
        .map(|(_, p)| p)
        .collect();
    let events: Vec<&super::state::EventRow> = snap.events.get(key).into_iter().flatten().collect();
    let mut actions: Vec<&str> = if read_only {
        Vec::new()
    } else {
        Action::NAMES
            .iter()
            .copied()
            .filter(|n| Action::from_name(n).is_some_and(|a| a.applies(ro)))
            .collect()
    };
    // `approve --force`: offered only while a failing metric refuses the plain approve.
    let force = Action::Approve {
        step: None,
        force: true,
    };
    if !read_only && !actions.contains(&"approve") && force.applies(ro) {
        actions.insert(0, "approve-force");
    }
    Some(json!({
        "now": now.to_string(),
        "rollout": row(ro),
        "position": model::position(ro),
        "waitingFor": c.filter(|_| in_flight).map(|c| model::state_reason(ro, c)),
        "traffic": model::canary_traffic(ro),
        "countdown": countdown,
        "steps": steps,
        "metrics": metrics,
        "canaryPods": canary_pods,
        "deployments": deployments,
        "services": services,
        "routing": routing_out,
        "events": events,
        "actions": actions,
        "readOnly": read_only,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_service_shapes() {
        let vs = json!({"kind": "VirtualService", "metadata": {"name": "vs"}, "spec": {"http": [
            {"match": [{"headers": {"version": {"exact": "canary"}}}],
             "route": [{"destination": {"host": "svc-canary"}}]},
            {"route": [{"destination": {"host": "svc"}, "weight": 80},
                       {"destination": {"host": "svc-canary"}, "weight": 20}],
             "mirror": {"host": "svc-canary"}, "mirrorPercentage": {"value": 50.0}}
        ]}});
        let r = routing(&vs, "svc", "svc-canary");
        assert_eq!(r["rules"][0]["matches"], json!(["header version=canary"]));
        assert_eq!(
            r["rules"][0]["backends"],
            json!([{"name": "svc-canary", "share": 100, "role": "canary"}])
        );
        assert_eq!(
            r["rules"][1]["backends"],
            json!([{"name": "svc", "share": 80, "role": "stable"}, {"name": "svc-canary", "share": 20, "role": "canary"}])
        );
        assert_eq!(
            r["rules"][1]["mirror"],
            json!({"name": "svc-canary", "percent": 50.0, "role": "canary"})
        );
    }

    #[test]
    fn http_route_shares_come_from_weights() {
        let hr = json!({"kind": "HTTPRoute", "metadata": {"name": "r"}, "spec": {"rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "svc", "port": 80, "weight": 3}, {"name": "svc-canary", "port": 80, "weight": 1}]},
            {"matches": [{"headers": [{"name": "x", "value": "1"}]}],
             "backendRefs": [{"name": "svc-canary", "port": 80}],
             "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "svc-canary"}, "percent": 10}}]}
        ]}});
        let r = routing(&hr, "svc", "svc-canary");
        assert_eq!(r["rules"][0]["matches"], json!([]));
        assert_eq!(r["rules"][0]["backends"][0]["share"], 75);
        assert_eq!(r["rules"][0]["backends"][1]["share"], 25);
        assert_eq!(r["rules"][1]["matches"], json!(["header x=1"]));
        assert_eq!(r["rules"][1]["backends"][0]["share"], 100);
        assert_eq!(r["rules"][1]["mirror"]["percent"], 10.0);
    }
}
