//! Snapshot tests of what users read: `list` and `status` (no colour) for a
//! rollout in each state. Inputs are in tests/fixtures/*.yaml (the objects as
//! the API server returns them); expected output in tests/snapshots/*.txt,
//! compared exactly. `UPDATE_SNAPSHOTS=1 cargo test -p kubectl-ramp` rewrites
//! the snapshots; review the diff before committing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kubectl_ramp::model::OPERATOR_STALL_SECONDS;
use kubectl_ramp::render::{StatusInput, Style, render_list, render_status};
use ramp_api::Rollout;
use serde::Deserialize;
use serde_json::Value;

const STATES: &[&str] = &[
    "healthy",
    "step1-header",
    "step2-upgrade",
    "step2-paused",
    "timed-pause",
    "aborted",
    "finishing",
    "no-operator",
    "subsets-step2",
    "httproute-mirror",
    "analysis-failing",
];

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

struct Fixture {
    rollout: Rollout,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    routing: Vec<Value>,
}

fn load(state: &str) -> Fixture {
    let text = std::fs::read_to_string(dir("fixtures").join(format!("{state}.yaml"))).unwrap();
    let mut rollout = None;
    let (mut deployments, mut services, mut routing) = (vec![], vec![], vec![]);
    for de in serde_yaml::Deserializer::from_str(&text) {
        let v = Value::deserialize(de).unwrap();
        match v["kind"].as_str().unwrap() {
            "Rollout" => rollout = Some(serde_json::from_value(v).unwrap()),
            "Deployment" => deployments.push(serde_json::from_value(v).unwrap()),
            "Service" => services.push(serde_json::from_value(v).unwrap()),
            _ => routing.push(v),
        }
    }
    Fixture {
        rollout: rollout.unwrap_or_else(|| panic!("{state}.yaml has no Rollout")),
        deployments,
        services,
        routing,
    }
}

/// Compares with tests/snapshots/NAME, or rewrites it with UPDATE_SNAPSHOTS=1.
fn snapshot(name: &str, actual: &str) {
    let path = dir("snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "snapshot {name} differs; if the change is intended run with UPDATE_SNAPSHOTS=1"
    );
}

fn status_text(f: &Fixture, style: Style) -> String {
    render_status(
        &StatusInput {
            rollout: &f.rollout,
            deployments: &f.deployments,
            services: &f.services,
            routing: &f.routing,
            now: now(),
            stall_seconds: OPERATOR_STALL_SECONDS,
        },
        style,
    )
}

#[test]
fn status_tree_for_each_state() {
    for state in STATES {
        let f = load(state);
        snapshot(
            &format!("status-{state}.txt"),
            &status_text(&f, Style::default()),
        );
    }
}

#[test]
fn list_of_every_state() {
    // One rollout per state, named after it.
    let rollouts: Vec<Rollout> = STATES
        .iter()
        .map(|s| {
            let mut r = load(s).rollout;
            r.metadata.name = Some((*s).to_string());
            r
        })
        .collect();
    snapshot("list.txt", &render_list(&rollouts, false, now()));
    snapshot(
        "list-all-namespaces.txt",
        &render_list(&rollouts, true, now()),
    );
}

#[test]
fn colour_codes_appear_only_when_asked() {
    let f = load("aborted");
    let plain = status_text(&f, Style { color: false });
    let coloured = status_text(&f, Style { color: true });
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[31m✖ Aborted\x1b[0m"), "{coloured}");
    // Same text once the codes are stripped.
    let stripped = regex_lite_strip(&coloured);
    assert_eq!(stripped, plain);
}

fn regex_lite_strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_countdown_moves_with_the_clock() {
    let f = load("timed-pause");
    let at = |secs: i64| {
        render_status(
            &StatusInput {
                rollout: &f.rollout,
                deployments: &f.deployments,
                services: &f.services,
                routing: &f.routing,
                now: now() + jiff::SignedDuration::from_secs(secs),
                stall_seconds: OPERATOR_STALL_SECONDS,
            },
            Style::default(),
        )
    };
    assert!(at(0).contains("pause 42s left of 60s"));
    assert!(at(30).contains("pause 12s left of 60s"));
    assert!(at(120).contains("pause 0s left of 60s"));
}

#[test]
fn a_measurement_recorded_in_the_next_second_reads_as_0s_ago() {
    let mut f = load("analysis-failing");
    let c = f
        .rollout
        .status
        .as_mut()
        .unwrap()
        .canary_status
        .as_mut()
        .unwrap();
    for r in &mut c.analysis {
        r.last_measurement_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now() + jiff::SignedDuration::from_secs(1),
        ));
    }
    let text = status_text(&f, Style::default());
    assert!(text.contains("last 0s ago"), "{text}");
    assert!(!text.contains("<invalid>"), "{text}");
}
