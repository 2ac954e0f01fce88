//! Reading the steps of a canary strategy: traffic weights, replica counts,
//! and the routing each step wants.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ramp_api::CanaryStep;

use crate::routing::StepRouting;

/// A step's values, parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParsedStep {
    /// Canary replicas as written.
    pub replicas: IntOrString,
    /// The routing in force during this step (a step with neither traffic,
    /// matches nor mirror keeps the previous step's routing, as in Kruise
    /// Rollout).
    pub routing: Option<StepRouting>,
    /// Pause duration in seconds; `None`: wait for approval.
    pub pause_seconds: Option<i32>,
}

/// `"50%"` (or `"50"`) → 50; errors name the field.
pub fn parse_percent(value: &str, field: &str) -> Result<i32, String> {
    let digits = value.trim().trim_end_matches('%').trim();
    let n: i32 = digits
        .parse()
        .map_err(|_| format!("{field}: \"{value}\" is not a percentage like \"50%\""))?;
    if !(1..=100).contains(&n) {
        return Err(format!(
            "{field}: \"{value}\" must be more than 0% and at most 100%"
        ));
    }
    Ok(n)
}

/// Canary replicas for a step: an integer, or `"NN%"` of the stable
/// Deployment's `spec.replicas`, rounded up.
pub fn canary_replicas(
    spec: &IntOrString,
    stable_replicas: i32,
    field: &str,
) -> Result<i32, String> {
    match spec {
        IntOrString::Int(n) if *n >= 0 => Ok(*n),
        IntOrString::Int(n) => Err(format!("{field}: {n} must not be negative")),
        IntOrString::String(s) if s.trim().ends_with('%') => {
            let pct = parse_percent(s, field)?;
            let total = i64::from(stable_replicas.max(0)) * i64::from(pct);
            Ok(i32::try_from((total + 99) / 100).unwrap_or(i32::MAX))
        }
        IntOrString::String(s) => {
            s.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    format!("{field}: \"{s}\" is neither a number nor a percentage like \"50%\"")
                })
        }
    }
}

/// Parse every step; returns all problems found.
pub(crate) fn parse_steps(steps: &[CanaryStep]) -> Result<Vec<ParsedStep>, Vec<String>> {
    let mut out = Vec::with_capacity(steps.len());
    let mut problems = Vec::new();
    let mut previous: Option<StepRouting> = None;
    for (i, step) in steps.iter().enumerate() {
        let base = format!("spec.strategy.canary.steps[{i}]");
        let weight = match &step.traffic {
            None => None,
            Some(t) => match parse_percent(t, &format!("{base}.traffic")) {
                Ok(w) => Some(w),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
        };
        let replicas = match &step.replicas {
            Some(r) => {
                if let Err(e) = canary_replicas(r, 100, &format!("{base}.replicas")) {
                    problems.push(e);
                }
                r.clone()
            }
            None => {
                problems.push(format!(
                    "{base}.replicas: required (a number, or \"NN%\" of the Deployment's replicas)"
                ));
                IntOrString::Int(0)
            }
        };
        for (m, mat) in step.matches.iter().enumerate() {
            for (h, header) in mat.headers.iter().enumerate() {
                if header.name.trim().is_empty() {
                    problems.push(format!(
                        "{base}.matches[{m}].headers[{h}].name: must not be empty"
                    ));
                }
            }
        }
        let mirror = step.mirror.as_ref().map(|m| m.percent);
        if let Some(p) = mirror
            && !(1..=100).contains(&p)
        {
            problems.push(format!(
                "{base}.mirror.percent: {p} must be more than 0 and at most 100"
            ));
        }
        let routing = if weight.is_some() || !step.matches.is_empty() || mirror.is_some() {
            Some(StepRouting {
                weight,
                matches: step.matches.clone(),
                mirror,
                request_header_modifier: step.request_header_modifier.clone(),
            })
        } else {
            previous.clone()
        };
        previous = routing.clone();
        let pause_seconds = step.pause.as_ref().and_then(|p| p.duration);
        if let Some(d) = pause_seconds
            && d < 0
        {
            problems.push(format!("{base}.pause.duration: {d} must not be negative"));
        }
        out.push(ParsedStep {
            replicas,
            routing,
            pause_seconds,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up_against_the_stable_replicas() {
        let f = "steps[0].replicas";
        assert_eq!(canary_replicas(&IntOrString::Int(1), 3, f), Ok(1));
        assert_eq!(
            canary_replicas(&IntOrString::String("50%".into()), 3, f),
            Ok(2)
        );
        assert_eq!(
            canary_replicas(&IntOrString::String("80%".into()), 3, f),
            Ok(3)
        );
        assert_eq!(
            canary_replicas(&IntOrString::String("100%".into()), 3, f),
            Ok(3)
        );
        assert_eq!(
            canary_replicas(&IntOrString::String("2".into()), 3, f),
            Ok(2)
        );
        let err = canary_replicas(&IntOrString::String("lots".into()), 3, f).unwrap_err();
        assert!(err.starts_with("steps[0].replicas:"), "{err}");
    }

    #[test]
    fn traffic_must_be_a_percentage_in_range() {
        assert_eq!(parse_percent("50%", "t"), Ok(50));
        assert_eq!(parse_percent("100%", "t"), Ok(100));
        assert!(
            parse_percent("0%", "t")
                .unwrap_err()
                .contains("more than 0%")
        );
        assert!(
            parse_percent("150%", "t")
                .unwrap_err()
                .contains("at most 100%")
        );
        assert!(
            parse_percent("half", "t")
                .unwrap_err()
                .contains("not a percentage")
        );
    }

    #[test]
    fn a_step_without_traffic_or_matches_keeps_the_previous_routing() {
        let steps: Vec<CanaryStep> = serde_json::from_value(serde_json::json!([
            {"replicas": 1},
            {"replicas": 2, "traffic": "20%"},
            {"replicas": 3},
        ]))
        .unwrap();
        let parsed = parse_steps(&steps).unwrap();
        assert_eq!(parsed[0].routing, None);
        assert_eq!(parsed[1].routing.as_ref().unwrap().weight, Some(20));
        assert_eq!(parsed[2].routing, parsed[1].routing);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let steps: Vec<CanaryStep> = serde_json::from_value(serde_json::json!([
            {"traffic": "150%"},
            {"replicas": 1, "matches": [{"headers": [{"name": "", "value": "x"}]}]},
        ]))
        .unwrap();
        let problems = parse_steps(&steps).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("spec.strategy.canary.steps[0].traffic"));
        assert!(problems[1].starts_with("spec.strategy.canary.steps[0].replicas"));
        assert!(
            problems[2].starts_with("spec.strategy.canary.steps[1].matches[0].headers[0].name")
        );
    }
}
