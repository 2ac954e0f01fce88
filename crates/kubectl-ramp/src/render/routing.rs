//! The routing objects in words: a VirtualService's and an HTTPRoute's
//! rules, one line each, as the status tree shows them.

use super::*;

pub(super) fn istio_string_match(m: &Value) -> Option<(&'static str, String)> {
    for (k, op) in [("exact", "="), ("prefix", "^="), ("regex", "~")] {
        if let Some(v) = m.get(k).and_then(Value::as_str) {
            return Some((op, v.to_string()));
        }
    }
    None
}

pub(super) fn describe_istio_match(m: &Value) -> String {
    let mut conds = Vec::new();
    if let Some(uri) = m.get("uri").and_then(istio_string_match) {
        conds.push(format!("uri {}{}", uri.0, uri.1));
    }
    for (key, word) in [("headers", "header"), ("queryParams", "query")] {
        if let Some(obj) = m.get(key).and_then(Value::as_object) {
            for (name, v) in obj {
                match istio_string_match(v) {
                    Some((op, val)) => conds.push(format!("{word} {name}{op}{val}")),
                    None => conds.push(format!("{word} {name}")),
                }
            }
        }
    }
    conds.join(" & ")
}

pub(super) fn describe_http_route(i: usize, r: &Value) -> String {
    let label = r
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| format!("http[{i}]"), |n| format!("http[{i}] {n}"));
    let matches: Vec<String> = r
        .get("match")
        .and_then(Value::as_array)
        .map(|ms| ms.iter().map(describe_istio_match).collect())
        .unwrap_or_default();
    let dests = r
        .get("route")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let single = dests.len() == 1;
    let dests: Vec<String> = dests
        .iter()
        .map(|d| {
            let dest = d.get("destination");
            let host = dest
                .and_then(|x| x.get("host"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let subset = dest
                .and_then(|x| x.get("subset"))
                .and_then(Value::as_str)
                .map(|s| format!(" (subset {s})"))
                .unwrap_or_default();
            let weight = match d.get("weight").and_then(Value::as_i64) {
                Some(w) => format!("{w}%"),
                None if single => "100%".into(),
                None => "0%".into(),
            };
            format!("{host}{subset} {weight}")
        })
        .collect();
    let m = if matches.is_empty() {
        String::new()
    } else {
        format!("{} ", matches.join(" or "))
    };
    let mut line = format!("{label}  {m}→ {}", dests.join(", "));
    if let Some(mirror) = r.get("mirror") {
        let host = mirror.get("host").and_then(Value::as_str).unwrap_or("?");
        let subset = mirror
            .get("subset")
            .and_then(Value::as_str)
            .map(|s| format!(" (subset {s})"))
            .unwrap_or_default();
        let percent = r
            .pointer("/mirrorPercentage/value")
            .and_then(Value::as_f64)
            .unwrap_or(100.0);
        line.push_str(&format!("; mirror → {host}{subset} {percent}%"));
    }
    line
}

/// The summary column and the child lines of a routing object in the `status` tree.
pub(super) fn describe_routing_object(kind: &str, v: &Value) -> (String, Vec<String>) {
    let strs = |ptr: &str| -> Vec<String> {
        v.pointer(ptr)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let items = |ptr: &str| {
        v.pointer(ptr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match kind {
        "DestinationRule" => {
            let host = v
                .pointer("/spec/host")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let lines = items("/spec/subsets")
                .iter()
                .map(|s| {
                    let labels = s
                        .get("labels")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    format!(
                        "subset {}  {labels}",
                        s.get("name").and_then(Value::as_str).unwrap_or("?")
                    )
                })
                .collect();
            (format!("host {host}"), lines)
        }
        "HTTPRoute" => {
            let parents: Vec<String> = items("/spec/parentRefs")
                .iter()
                .map(|p| {
                    let kind = p.get("kind").and_then(Value::as_str).unwrap_or("Gateway");
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
                    format!("{kind}/{name}")
                })
                .collect();
            let lines = items("/spec/rules")
                .iter()
                .enumerate()
                .map(|(i, r)| describe_gateway_rule(i, r))
                .collect();
            (format!("parents {}", parents.join(",")), lines)
        }
        _ => {
            let lines = items("/spec/http")
                .iter()
                .enumerate()
                .map(|(i, r)| describe_http_route(i, r))
                .collect();
            (format!("hosts {}", strs("/spec/hosts").join(",")), lines)
        }
    }
}

/// `rules[0]  header version=canary → service-demo-canary 100%; mirror → service-demo-canary 100%`
pub(super) fn describe_gateway_rule(i: usize, r: &Value) -> String {
    let matches: Vec<String> = r
        .get("matches")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .map(describe_gateway_match)
                .filter(|m| !m.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let backends = r
        .get("backendRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Gateway API weights are relative (default 1): shown as shares of 100.
    let weight = |b: &Value| b.get("weight").and_then(Value::as_i64).unwrap_or(1);
    let total: i64 = backends.iter().map(weight).sum();
    let backends: Vec<String> = backends
        .iter()
        .map(|b| {
            let name = b.get("name").and_then(Value::as_str).unwrap_or("?");
            let share = if total > 0 {
                weight(b) * 100 / total
            } else {
                0
            };
            format!("{name} {share}%")
        })
        .collect();
    let mirrors: Vec<String> = r
        .get("filters")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .filter(|f| f.get("type").and_then(Value::as_str) == Some("RequestMirror"))
                .map(|f| {
                    let m = f.get("requestMirror");
                    let to = m
                        .and_then(|m| m.pointer("/backendRef/name"))
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    let percent = m
                        .and_then(|m| m.get("percent"))
                        .and_then(Value::as_i64)
                        .unwrap_or(100);
                    format!("mirror → {to} {percent}%")
                })
                .collect()
        })
        .unwrap_or_default();
    let m = if matches.is_empty() {
        String::new()
    } else {
        format!("{} ", matches.join(" or "))
    };
    let mut line = format!("rules[{i}]  {m}→ {}", backends.join(", "));
    for mirror in mirrors {
        line.push_str("; ");
        line.push_str(&mirror);
    }
    line
}

pub(super) fn describe_gateway_match(m: &Value) -> String {
    let mut conds = Vec::new();
    if let Some(path) = m.get("path") {
        let op = match path.get("type").and_then(Value::as_str) {
            Some("Exact") => "=",
            Some("RegularExpression") => "~",
            _ => "^=",
        };
        if let Some(v) = path.get("value").and_then(Value::as_str) {
            conds.push(format!("path {op}{v}"));
        }
    }
    for (key, word) in [("headers", "header"), ("queryParams", "query")] {
        for h in m.get(key).and_then(Value::as_array).into_iter().flatten() {
            let name = h.get("name").and_then(Value::as_str).unwrap_or("?");
            let value = h.get("value").and_then(Value::as_str).unwrap_or("");
            let op = if h.get("type").and_then(Value::as_str) == Some("RegularExpression") {
                "~"
            } else {
                "="
            };
            conds.push(format!("{word} {name}{op}{value}"));
        }
    }
    conds.join(" & ")
}

pub(super) fn obj_name(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}
