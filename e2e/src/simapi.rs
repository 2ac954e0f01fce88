//! The embedded cluster's own endpoints — fault rules (`/sim/v1/faults`), request counts
//! (`/sim/v1/stats`) and the write log (`/sim/v1/writes`) — reached through `kubectl --raw`
//! with the scenario's kubeconfig.

use serde_json::Value;

use crate::Env;

/// Adds a fault rule (see `ramp_sim::faults::FaultRule`); returns its id.
pub fn add_fault(env: &Env, rule: &Value) -> u64 {
    let f = env.path(&format!("fault-{}.json", std::process::id()));
    std::fs::write(&f, rule.to_string()).expect("write the fault rule");
    let out = env
        .kubectl(&["create", "--raw", "/sim/v1/faults", "-f"])
        .arg(&f)
        .ok();
    let v: Value = serde_json::from_str(&out).expect("the added rule as JSON");
    v["id"].as_u64().expect("the added rule's id")
}

/// Every rule with its counters, and `watchDrops`.
pub fn faults(env: &Env) -> Value {
    let out = env.kubectl(&["get", "--raw", "/sim/v1/faults"]).ok();
    serde_json::from_str(&out).expect("fault rules as JSON")
}

/// One rule with its counters (None once removed).
pub fn fault(env: &Env, id: u64) -> Option<Value> {
    faults(env)["rules"]
        .as_array()?
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
}

/// Removes one rule.
pub fn remove_fault(env: &Env, id: u64) {
    env.kubectl(&["delete", "--raw", &format!("/sim/v1/faults/{id}")])
        .ok();
}

/// Removes every rule.
pub fn clear_faults(env: &Env) {
    env.kubectl(&["delete", "--raw", "/sim/v1/faults"]).ok();
}

/// Request counts (`{"requests": [{userAgent, verb, resource, code, count}], "total"}`).
pub fn stats(env: &Env) -> Value {
    let out = env.kubectl(&["get", "--raw", "/sim/v1/stats"]).ok();
    serde_json::from_str(&out).expect("stats as JSON")
}

/// Every answered write so far, in order (`{seq, userAgent, verb, resource, namespace, name,
/// code}`).
pub fn writes(env: &Env) -> Vec<Value> {
    let out = env.kubectl(&["get", "--raw", "/sim/v1/writes"]).ok();
    let v: Value = serde_json::from_str(&out).expect("writes as JSON");
    v["writes"].as_array().cloned().unwrap_or_default()
}

/// The writes whose user agent contains `ua`, after `seq`.
pub fn writes_of(env: &Env, ua: &str, after_seq: u64) -> Vec<Value> {
    writes(env)
        .into_iter()
        .filter(|w| w["seq"].as_u64().unwrap_or(0) > after_seq)
        .filter(|w| w["userAgent"].as_str().is_some_and(|u| u.contains(ua)))
        .collect()
}

/// The sequence number of the last write so far (0 when none).
pub fn last_write_seq(env: &Env) -> u64 {
    writes(env)
        .last()
        .and_then(|w| w["seq"].as_u64())
        .unwrap_or(0)
}
