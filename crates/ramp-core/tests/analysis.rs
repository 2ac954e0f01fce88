//! Metric analysis rules, driven through whole rollouts: the planner asks
//! for measurements (`measurement_due`), the test answers them with scripted
//! outcomes as the operator would with Prometheus, and the planner promotes,
//! holds or aborts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::World;
use ramp_api::{MeasurementPhase, RolloutAction, RolloutPhase, StepState};
use ramp_core::analysis::{Outcome, measurement_due};
use ramp_core::{Plan, plan};
use serde_json::json;

/// The walk-through with two timed traffic steps (10 s each) and an
/// approval step between them, judged on two metrics every 2 s.
fn world(edit: impl FnOnce(&mut serde_json::Value)) -> World {
    let mut w = World::load("walkthrough");
    let mut ro = serde_json::to_value(&w.rollout).unwrap();
    ro["spec"]["strategy"]["canary"]["steps"] = json!([
        {"traffic": "20%", "replicas": 1, "pause": {"duration": 10}},
        {"traffic": "50%", "replicas": "50%", "pause": {"duration": 10}},
    ]);
    ro["spec"]["strategy"]["canary"]["analysis"] = json!({
        "interval": "2s",
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
        ]
    });
    edit(&mut ro);
    w.rollout = serde_json::from_value(ro).unwrap();
    w.run_to_phase(RolloutPhase::Healthy);
    w
}

fn good(metric: &str) -> Outcome {
    match metric {
        "request-success-rate" => Outcome::Value {
            value: 100.0,
            samples: Some(40.0),
        },
        _ => Outcome::Value {
            value: 120.0,
            samples: Some(40.0),
        },
    }
}

/// One plan, with the measurements it asked for answered by `outcome`.
fn drive(w: &mut World, outcome: &dyn Fn(&str) -> Outcome) -> (Plan, usize) {
    let mut o = w.observe();
    let mut measured = 0;
    if let Some(req) = measurement_due(&o) {
        measured = req.metrics.len();
        o.measurements = req
            .metrics
            .iter()
            .map(|m| ramp_core::analysis::Measurement {
                metric: m.name.clone(),
                at: w.now,
                outcome: outcome(&m.name),
            })
            .collect();
    }
    let p = plan(&o);
    w.apply(&p).unwrap();
    w.settle();
    w.plans.push(p.clone());
    (p, measured)
}

/// Drive until `done`, advancing the clock when the planner waits; returns
/// the number of measurement rounds. Panics after `limit` of simulated time.
fn run(
    w: &mut World,
    outcome: &dyn Fn(&str) -> Outcome,
    limit: Duration,
    done: impl Fn(&World) -> bool,
) -> usize {
    let start = w.now;
    let mut rounds = 0;
    for _ in 0..2000 {
        if done(w) {
            return rounds;
        }
        assert!(
            (w.now - start).to_std().unwrap() <= limit,
            "not done after {limit:?}: {:#?}",
            w.rollout.status
        );
        let before = w.rollout.status.clone();
        let (p, measured) = drive(w, outcome);
        if measured > 0 {
            rounds += 1;
        }
        if p.actions.is_empty() && Some(&p.status) == before.as_ref() && measured == 0 {
            let d = p
                .requeue_after
                .unwrap_or_else(|| panic!("stuck: {:#?}", w.rollout.status));
            w.advance(d);
        }
    }
    panic!("too many plans")
}

fn at(w: &World, step: i32, state: StepState) -> bool {
    let cs = w.cs();
    w.phase() == Some(RolloutPhase::Progressing)
        && cs.current_step_index == step
        && cs.current_step_state == state
        && cs.finalising_step.is_none()
}

fn record(w: &World, metric: &str) -> ramp_api::MetricAnalysisStatus {
    w.cs()
        .analysis
        .into_iter()
        .find(|r| r.name == metric)
        .unwrap_or_default()
}

fn condition_reason(w: &World, type_: &str) -> String {
    w.rollout
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .and_then(|c| c.reason.clone())
        .unwrap_or_default()
}

#[test]
fn a_good_canary_is_promoted_without_approvals() {
    let mut w = world(|_| {});
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    // No measurement before the first interval has passed.
    let o = w.observe();
    assert_eq!(measurement_due(&o), None);
    let rounds = run(&mut w, &good, Duration::from_secs(120), |w| {
        w.phase() == Some(RolloutPhase::Healthy)
    });
    // 10 s pauses measured every 2 s: five rounds per step.
    assert_eq!(rounds, 10, "measurement rounds over two 10 s steps");
    let r = record(&w, "request-success-rate");
    assert_eq!(r.step_index, 2);
    assert_eq!(r.phase, Some(MeasurementPhase::Passed));
    assert_eq!(r.last_value, Some(100.0));
    assert_eq!(r.last_samples, Some(40.0));
    assert_eq!(r.passed_in_step, 5);
    assert_eq!(r.total.passed, 10);
    assert!(r.last_measurement_time.is_some());
    let d = record(&w, "request-duration");
    assert_eq!(d.last_value, Some(120.0));
    assert_eq!(d.threshold_range.max, Some(500.0));
    assert!(
        w.plans
            .iter()
            .flat_map(|p| &p.events)
            .any(|e| e.reason == "StepReady" && e.message.contains("analysis passed")),
    );
}

#[test]
fn a_failing_metric_aborts_at_once_with_failure_limit_1() {
    let mut w = world(|_| {});
    let original_vs = w.vs("vs-demo").clone();
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    let paused_at = w.now;
    let bad = |m: &str| match m {
        "request-success-rate" => Outcome::Value {
            value: 70.0,
            samples: Some(40.0),
        },
        other => good(other),
    };
    run(&mut w, &bad, Duration::from_secs(60), |w| {
        w.phase() == Some(RolloutPhase::Aborted) && w.cs().finalising_step.is_none()
    });
    // One interval after the pause began, plus the grace of the routing restore.
    assert!((w.now - paused_at).to_std().unwrap() <= Duration::from_secs(2 + 3));
    assert_eq!(w.cs().current_step_index, 1, "no step after it was reached");
    assert_eq!(condition_reason(&w, "Succeeded"), "AnalysisFailed");
    assert_eq!(condition_reason(&w, "Progressing"), "AnalysisFailed");
    let msg = w.message();
    assert!(
        msg.contains("request-success-rate was 70, outside the range >= 99"),
        "{msg}"
    );
    assert!(msg.contains("canary scaled to 0"), "{msg}");
    assert_eq!(
        w.vs("vs-demo")["spec"],
        original_vs["spec"],
        "routing restored"
    );
    assert_eq!(
        w.canary().unwrap().spec.as_ref().unwrap().replicas,
        Some(0),
        "canary scaled to 0"
    );
    let warning = w
        .plans
        .iter()
        .flat_map(|p| &p.events)
        .find(|e| e.reason == "AnalysisFailed")
        .expect("a Warning event AnalysisFailed");
    assert_eq!(warning.type_, ramp_core::EventType::Warning);
    assert!(warning.message.contains("request-success-rate was 70"));
    // Aborted: nothing more is measured.
    assert_eq!(measurement_due(&w.observe()), None);
}

#[test]
fn failure_limit_counts_failures_in_a_row() {
    let mut w = world(|ro| {
        ro["spec"]["strategy"]["canary"]["analysis"]["metrics"][1]["failureLimit"] = 2.into();
    });
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    let slow = |m: &str| match m {
        "request-duration" => Outcome::Value {
            value: 900.0,
            samples: Some(40.0),
        },
        other => good(other),
    };
    // One slow measurement: held, not aborted.
    run(&mut w, &slow, Duration::from_secs(10), |w| {
        record(w, "request-duration").consecutive_failures == 1
    });
    assert_eq!(w.phase(), Some(RolloutPhase::Progressing));
    assert_eq!(condition_reason(&w, "Progressing"), "AnalysisFailing");
    // A pass in between starts the count again.
    run(&mut w, &good, Duration::from_secs(10), |w| {
        record(w, "request-duration").phase == Some(MeasurementPhase::Passed)
    });
    assert_eq!(record(&w, "request-duration").consecutive_failures, 0);
    run(&mut w, &slow, Duration::from_secs(10), |w| {
        record(w, "request-duration").consecutive_failures == 1
    });
    assert_eq!(w.phase(), Some(RolloutPhase::Progressing));
    // The second in a row aborts.
    run(&mut w, &slow, Duration::from_secs(10), |w| {
        w.phase() == Some(RolloutPhase::Aborted) && w.cs().finalising_step.is_none()
    });
    let msg = w.message();
    assert!(
        msg.contains("request-duration was 900, outside the range <= 500, Failed 2 times in a row (failureLimit 2)"),
        "{msg}"
    );
    assert_eq!(record(&w, "request-duration").total.failed, 3);
}

#[test]
fn no_data_holds_past_the_pause_and_never_aborts_then_continues() {
    let mut w = world(|_| {});
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    let idle = |_: &str| Outcome::Value {
        value: 100.0,
        samples: Some(0.0),
    };
    // Far past the 10 s pause: still at step 1, holding with NoData.
    let start = w.now;
    run(&mut w, &idle, Duration::from_secs(120), |w| {
        (w.now - start).to_std().unwrap() >= Duration::from_secs(60)
    });
    assert!(at(&w, 1, StepState::StepPaused), "{:#?}", w.cs());
    assert_eq!(condition_reason(&w, "Progressing"), "AnalysisNoData");
    let msg = w.message();
    assert!(
        msg.contains("pause of 10s is over; holding until every metric passes"),
        "{msg}"
    );
    assert!(
        msg.contains("request-success-rate NoData: the canary served 0 requests in the last 10s, fewer than minSamples 10"),
        "{msg}"
    );
    let r = record(&w, "request-success-rate");
    assert!(r.consecutive_no_data >= 29, "{r:?}");
    assert_eq!(r.passed_in_step, 0);
    // Traffic is back: the next passing round advances.
    run(&mut w, &good, Duration::from_secs(10), |w| {
        w.cs().current_step_index == 2
    });
}

#[test]
fn an_error_holds_with_the_error_and_never_aborts_then_continues() {
    let mut w = world(|_| {});
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    let down = |_: &str| {
        Outcome::Error("Prometheus http://127.0.0.1:9 unreachable: connection refused".into())
    };
    let start = w.now;
    run(&mut w, &down, Duration::from_secs(120), |w| {
        (w.now - start).to_std().unwrap() >= Duration::from_secs(30)
    });
    assert!(at(&w, 1, StepState::StepPaused));
    assert_eq!(w.phase(), Some(RolloutPhase::Progressing));
    assert_eq!(condition_reason(&w, "Progressing"), "AnalysisError");
    assert!(
        w.message().contains("http://127.0.0.1:9 unreachable"),
        "{}",
        w.message()
    );
    let r = record(&w, "request-duration");
    assert_eq!(r.phase, Some(MeasurementPhase::Error));
    assert_eq!(
        r.last_error.as_deref(),
        Some("Prometheus http://127.0.0.1:9 unreachable: connection refused")
    );
    run(&mut w, &good, Duration::from_secs(60), |w| {
        w.phase() == Some(RolloutPhase::Healthy)
    });
}

#[test]
fn a_timed_step_needs_every_metric_passing_at_the_end() {
    let mut w = world(|_| {});
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    // Passes all along, but the duration metric has no data at the end of the pause.
    let start = w.now;
    let late_gap = move |m: &str, now: chrono::DateTime<chrono::Utc>| {
        if m == "request-duration" && (now - start).num_seconds() >= 8 {
            Outcome::Empty {
                samples: Some(40.0),
            }
        } else {
            good(m)
        }
    };
    let clock = std::cell::Cell::new(w.now);
    let outcome = |m: &str| late_gap(m, clock.get());
    for _ in 0..40 {
        clock.set(w.now);
        let before = w.rollout.status.clone();
        let (p, measured) = drive(&mut w, &outcome);
        if p.status == before.unwrap() && measured == 0 {
            w.advance(p.requeue_after.unwrap());
        }
        if (w.now - start).num_seconds() > 20 {
            break;
        }
    }
    assert!(
        at(&w, 1, StepState::StepPaused),
        "advanced without a pass at the end"
    );
    let r = record(&w, "request-duration");
    assert!(r.passed_in_step >= 3);
    assert_eq!(r.phase, Some(MeasurementPhase::NoData));
    assert!(
        w.message()
            .contains("request-duration NoData: the query returned no series (the canary served 40 requests in the last 10s)")
    );
}

#[test]
fn an_approval_step_measures_and_aborts_but_never_advances_by_itself() {
    let mut w = world(|ro| {
        ro["spec"]["strategy"]["canary"]["steps"][0]
            .as_object_mut()
            .unwrap()
            .remove("pause");
    });
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    let start = w.now;
    let rounds = run(&mut w, &good, Duration::from_secs(60), |w| {
        (w.now - start).to_std().unwrap() >= Duration::from_secs(30)
    });
    assert!(rounds >= 14, "measured {rounds} times in 30 s");
    assert!(at(&w, 1, StepState::StepPaused));
    let msg = w.message();
    assert!(msg.contains("waiting for approval"), "{msg}");
    assert!(
        msg.contains("analysis: request-success-rate 100 Passed (range >= 99)"),
        "{msg}"
    );
    w.approve();
    run(&mut w, &good, Duration::from_secs(60), |w| {
        at(w, 2, StepState::StepPaused)
    });
    // The new step starts its own records.
    let r = record(&w, "request-success-rate");
    assert_eq!(r.step_index, 2);
    assert_eq!(r.phase, None);
    assert!(r.total.passed >= 14, "totals cover the rollout: {r:?}");
    let bad = |_: &str| Outcome::Value {
        value: 0.0,
        samples: Some(40.0),
    };
    run(&mut w, &bad, Duration::from_secs(10), |w| {
        w.phase() == Some(RolloutPhase::Aborted)
    });
}

#[test]
fn measurements_wait_for_the_traffic_and_stop_while_paused_or_aborting() {
    let mut w = world(|_| {});
    w.set_version("canary");
    // Before StepPaused (canary scaling, routing, grace): nothing is measured.
    for _ in 0..50 {
        if at(&w, 1, StepState::StepPaused) {
            break;
        }
        assert_eq!(measurement_due(&w.observe()), None, "{:?}", w.cs());
        let p = w.step();
        if let Some(d) = p.requeue_after
            && p.actions.is_empty()
        {
            w.advance(d);
        }
    }
    assert!(at(&w, 1, StepState::StepPaused));
    w.advance(Duration::from_secs(2));
    let req = measurement_due(&w.observe()).expect("due one interval after the pause began");
    assert_eq!(req.window, "10s");
    assert_eq!(req.address, None);
    assert!(
        req.metrics[0]
            .query
            .contains("destination_workload=\"workload-demo-canary\""),
        "{}",
        req.metrics[0].query
    );
    assert!(
        req.samples_query
            .contains("destination_workload_namespace=\"default\"")
    );
    // spec.strategy.paused: nothing is measured.
    let mut paused = w.clone();
    paused.rollout.spec.strategy.paused = true;
    assert_eq!(measurement_due(&paused.observe()), None);
    // An abort requested: nothing is measured.
    let mut aborting = w.clone();
    aborting.request(RolloutAction::Abort);
    assert_eq!(measurement_due(&aborting.observe()), None);
}

#[test]
fn a_retry_starts_the_records_again() {
    let mut w = world(|_| {});
    w.set_version("canary");
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
    });
    let bad = |_: &str| Outcome::Value {
        value: 10.0,
        samples: Some(40.0),
    };
    run(&mut w, &bad, Duration::from_secs(30), |w| {
        w.phase() == Some(RolloutPhase::Aborted) && w.cs().finalising_step.is_none()
    });
    w.request(RolloutAction::Retry);
    run(&mut w, &good, Duration::from_secs(120), |w| {
        at(w, 1, StepState::StepPaused)
            && w.cs()
                .analysis
                .iter()
                .all(|r| r.phase.is_none() || r.phase == Some(MeasurementPhase::Passed))
    });
    run(&mut w, &good, Duration::from_secs(10), |w| {
        record(w, "request-success-rate").phase == Some(MeasurementPhase::Passed)
    });
    let r = record(&w, "request-success-rate");
    assert_eq!(r.consecutive_failures, 0);
    assert_eq!(r.measurements, 1);
    run(&mut w, &good, Duration::from_secs(120), |w| {
        w.phase() == Some(RolloutPhase::Healthy)
    });
}
