//! The user actions as pure plans: given the Rollout as last read, either a
//! refusal saying why the action does not apply, or the exact guarded patch
//! to send and what to print and record afterwards.
//!
//! Status actions are JSON patches on the `status` subresource whose `test`
//! operations pin the state the user saw, so a stale or repeated command
//! fails on the server (HTTP 422) instead of acting on a later step.

use json_patch::Patch as JsonPatch;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use ramp_api::names::POD_TEMPLATE_HASH_LABEL;
use ramp_api::{Rollout, RolloutAction, RolloutPhase, StepState};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::{
    canary, failing_metrics, metric_text, name, phase, position, state_reason, step_of, steps,
};

/// A planned write and what to say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The write.
    pub write: Write,
    /// Printed on stdout after the write succeeded.
    pub done: String,
    /// The Event recorded on the Rollout after the write.
    pub event: EventNote,
    /// Word for the race message: "not approved", "not aborted", ...
    pub not_done: &'static str,
}

/// The kinds of write the plugin makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// JSON patch on the Rollout's status subresource.
    RolloutStatus(JsonPatch),
    /// Merge patch on the Rollout.
    RolloutMerge(Value),
    /// JSON patch on the workload Deployment.
    Deployment {
        /// Deployment name.
        name: String,
        /// The patch.
        patch: JsonPatch,
    },
    /// Nothing to write (the rollout already is as asked).
    Nothing,
}

/// What the Event on the Rollout says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// CamelCase reason, e.g. `Approved`.
    pub reason: &'static str,
    /// The action, e.g. `Approve`.
    pub action: &'static str,
    /// The message before ` by USER`, e.g. `step 2/3 approved`.
    pub what: String,
}

impl Plan {
    /// The JSON form of the patch (for tests and `--dry-run` style output).
    pub fn patch_json(&self) -> Value {
        match &self.write {
            Write::RolloutStatus(p) | Write::Deployment { patch: p, .. } => {
                serde_json::to_value(p).unwrap_or(Value::Null)
            }
            Write::RolloutMerge(v) => v.clone(),
            Write::Nothing => Value::Null,
        }
    }
}

/// A user action, as the CLI subcommands and the dashboard's buttons name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `approve [--step N] [--force]`.
    Approve {
        /// Only approve at this step.
        step: Option<i32>,
        /// Approve while analysis fails.
        force: bool,
    },
    /// `promote --full`.
    PromoteFull,
    /// `abort`.
    Abort,
    /// `retry`.
    Retry,
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `undo` (needs the workload and the stable ReplicaSets: see `run::execute`).
    Undo,
}

impl Action {
    /// Every action the dashboard offers, by its URL name.
    pub const NAMES: [&'static str; 7] = [
        "approve",
        "promote-full",
        "abort",
        "retry",
        "pause",
        "resume",
        "undo",
    ];

    /// The action for a URL name (`approve`, `promote-full`, ...).
    pub fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "approve" => Action::Approve {
                step: None,
                force: false,
            },
            "promote-full" => Action::PromoteFull,
            "abort" => Action::Abort,
            "retry" => Action::Retry,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "undo" => Action::Undo,
            _ => return None,
        })
    }

    /// The plan for every action but `undo` (which reads more objects; its
    /// plan is [`undo`]). `None` for `undo`.
    pub fn plan(self, ro: &Rollout) -> Option<Result<Plan>> {
        Some(match self {
            Action::Approve { step, force } => approve_with(ro, step, force),
            Action::PromoteFull => promote_full(ro),
            Action::Abort => abort(ro),
            Action::Retry => retry(ro),
            Action::Pause => Ok(set_paused(ro, true)),
            Action::Resume => Ok(set_paused(ro, false)),
            Action::Undo => return None,
        })
    }

    /// Whether the action would do something now (a plan that is not a
    /// refusal and writes something); `undo` is offered while a rollout is
    /// in flight or aborted.
    pub fn applies(self, ro: &Rollout) -> bool {
        match self.plan(ro) {
            Some(Ok(p)) => p.write != Write::Nothing,
            Some(Err(_)) => false,
            None => {
                canary(ro).is_some_and(|c| !c.stable_revision.is_empty())
                    && matches!(
                        phase(ro),
                        Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
                    )
            }
        }
    }
}

/// The step the user saw when asking for an action (the dashboard sends it),
/// so the guard pins that step rather than whatever the server has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// `currentStepIndex` as shown.
    pub step: i32,
    /// `currentStepState` as shown.
    pub state: StepState,
}

/// `ro` with the canary position the user saw: the plan made from it tests
/// that position, so the server refuses it (HTTP 422) if the step moved on.
pub fn as_seen(ro: &Rollout, seen: Option<Seen>) -> Rollout {
    let mut ro = ro.clone();
    if let Some(seen) = seen
        && let Some(c) = ro.status.as_mut().and_then(|s| s.canary_status.as_mut())
    {
        c.current_step_index = seen.step;
        c.current_step_state = seen.state;
    }
    ro
}

fn json_patch(ops: Value) -> Result<JsonPatch> {
    serde_json::from_value(ops).map_err(|e| Error::Api(format!("building the patch: {e}")))
}

const IDX: &str = "/status/canaryStatus/currentStepIndex";
const STATE: &str = "/status/canaryStatus/currentStepState";
const PHASE: &str = "/status/phase";
const ACTION: &str = "/status/canaryStatus/requestedAction";

/// Why a status action cannot apply when the rollout is not progressing.
fn not_progressing(ro: &Rollout, what: &str) -> Error {
    let n = name(ro);
    Error::Refused(match phase(ro) {
        None => format!("rollout '{n}' has no status yet; nothing to {what}"),
        Some(RolloutPhase::Healthy) => {
            format!("rollout '{n}' is Healthy (no rollout in progress); nothing to {what}")
        }
        Some(RolloutPhase::Aborted) => format!(
            "rollout '{n}' is {}; nothing to {what} (`kubectl ramp retry {n}` starts again from step 1)",
            position(ro)
        ),
        Some(p) => format!("rollout '{n}' is {p}; nothing to {what}"),
    })
}

/// `approve [--step N]`: StepPaused → StepReady at the step shown (or N);
/// refused while a metric of the step is failing.
pub fn approve(ro: &Rollout, step: Option<i32>) -> Result<Plan> {
    approve_with(ro, step, false)
}

/// `approve [--step N] [--force]`: `force` approves even while a metric of
/// the step is failing, and says so in the Event.
pub fn approve_with(ro: &Rollout, step: Option<i32>, force: bool) -> Result<Plan> {
    let n = name(ro);
    if phase(ro) != Some(RolloutPhase::Progressing) {
        return Err(not_progressing(ro, "approve"));
    }
    let Some(c) = canary(ro) else {
        return Err(Error::Refused(format!(
            "rollout '{n}' is Progressing but has no canary status yet; nothing to approve"
        )));
    };
    let current = c.current_step_index;
    if let Some(want) = step {
        let total = steps(ro).len();
        if usize::try_from(want).is_ok_and(|w| w > total) {
            return Err(Error::Refused(format!(
                "rollout '{n}' has {total} steps; there is no step {want} to approve"
            )));
        }
        if want != current {
            return Err(Error::Refused(format!(
                "rollout '{n}' is at step {} ({}), not step {want}; not approved",
                step_of(ro, current),
                c.current_step_state
            )));
        }
    }
    if c.current_step_state != StepState::StepPaused {
        return Err(Error::Refused(format!(
            "rollout '{n}' is at step {} in state {} ({}); nothing to approve",
            step_of(ro, current),
            c.current_step_state,
            state_reason(ro, c)
        )));
    }
    let failing = failing_metrics(ro)
        .into_iter()
        .map(metric_text)
        .collect::<Vec<_>>()
        .join(", ");
    if !failing.is_empty() && !force {
        return Err(Error::Refused(format!(
            "rollout '{n}' step {}: analysis is failing: {failing}; not approved (`kubectl ramp approve {n} --force` approves anyway, and the Event says so)",
            step_of(ro, current)
        )));
    }
    let mut what = format!("step {} approved", step_of(ro, current));
    if !failing.is_empty() {
        what.push_str(&format!(
            " with --force while analysis was failing: {failing}"
        ));
    }
    let mut done = format!("rollout '{n}' approved step {}", step_of(ro, current));
    if !failing.is_empty() {
        done.push_str(&format!(" (forced: {failing} failing)"));
    }
    if ro.spec.strategy.paused {
        done.push_str(&format!(
            " (the rollout is paused: it moves on after `kubectl ramp resume {n}`)"
        ));
    }
    Ok(Plan {
        write: Write::RolloutStatus(json_patch(json!([
            {"op": "test", "path": IDX, "value": current},
            {"op": "test", "path": STATE, "value": StepState::StepPaused},
            {"op": "replace", "path": STATE, "value": StepState::StepReady},
        ]))?),
        done,
        event: EventNote {
            reason: "Approved",
            action: "Approve",
            what,
        },
        not_done: "not approved",
    })
}

fn requested(ro: &Rollout, want: RolloutAction) -> bool {
    canary(ro).and_then(|c| c.requested_action) == Some(want)
}

/// `abort`: ask the operator to move traffic back and scale the canary down.
pub fn abort(ro: &Rollout) -> Result<Plan> {
    let n = name(ro);
    match phase(ro) {
        Some(RolloutPhase::Progressing) => {}
        Some(RolloutPhase::Aborted) => {
            return Err(Error::Refused(format!(
                "rollout '{n}' is already {}; nothing to abort",
                position(ro)
            )));
        }
        _ => return Err(not_progressing(ro, "abort")),
    }
    let Some(c) = canary(ro) else {
        return Err(Error::Refused(format!(
            "rollout '{n}' is Progressing but has no canary status yet; nothing to abort"
        )));
    };
    if requested(ro, RolloutAction::Abort) {
        return Err(Error::Refused(format!(
            "rollout '{n}' already has an abort requested at step {}; the operator has not acted on it yet",
            step_of(ro, c.current_step_index)
        )));
    }
    let at = step_of(ro, c.current_step_index);
    Ok(Plan {
        write: Write::RolloutStatus(json_patch(json!([
            {"op": "test", "path": PHASE, "value": RolloutPhase::Progressing},
            {"op": "test", "path": IDX, "value": c.current_step_index},
            {"op": "add", "path": ACTION, "value": RolloutAction::Abort},
        ]))?),
        done: format!("rollout '{n}' abort requested at step {at}"),
        event: EventNote {
            reason: "AbortRequested",
            action: "Abort",
            what: format!("abort requested at step {at}"),
        },
        not_done: "not aborted",
    })
}

/// `retry`: after an abort, start again from step 1.
pub fn retry(ro: &Rollout) -> Result<Plan> {
    let n = name(ro);
    if phase(ro) != Some(RolloutPhase::Aborted) {
        return Err(Error::Refused(format!(
            "rollout '{n}' is {}, not Aborted; nothing to retry",
            position(ro)
        )));
    }
    if canary(ro).is_none() {
        return Err(Error::Refused(format!(
            "rollout '{n}' is Aborted but has no canary status; nothing to retry (`kubectl ramp undo {n}` rolls back)"
        )));
    }
    if requested(ro, RolloutAction::Retry) {
        return Err(Error::Refused(format!(
            "rollout '{n}' already has a retry requested; the operator has not acted on it yet"
        )));
    }
    Ok(Plan {
        write: Write::RolloutStatus(json_patch(json!([
            {"op": "test", "path": PHASE, "value": RolloutPhase::Aborted},
            {"op": "add", "path": ACTION, "value": RolloutAction::Retry},
        ]))?),
        done: format!("rollout '{n}' retry requested: starting again from step 1"),
        event: EventNote {
            reason: "RetryRequested",
            action: "Retry",
            what: "retry requested (starting again from step 1)".into(),
        },
        not_done: "retry not requested",
    })
}

/// `promote --full`: skip the remaining steps and finish.
pub fn promote_full(ro: &Rollout) -> Result<Plan> {
    let n = name(ro);
    if phase(ro) != Some(RolloutPhase::Progressing) {
        return Err(not_progressing(ro, "promote"));
    }
    let Some(c) = canary(ro) else {
        return Err(Error::Refused(format!(
            "rollout '{n}' is Progressing but has no canary status yet; nothing to promote"
        )));
    };
    if c.current_step_state == StepState::Completed {
        return Err(Error::Refused(format!(
            "rollout '{n}' has done all its steps and is finishing; nothing to promote"
        )));
    }
    if requested(ro, RolloutAction::PromoteFull) {
        return Err(Error::Refused(format!(
            "rollout '{n}' already has a full promotion requested; the operator has not acted on it yet"
        )));
    }
    let at = step_of(ro, c.current_step_index);
    Ok(Plan {
        write: Write::RolloutStatus(json_patch(json!([
            {"op": "test", "path": PHASE, "value": RolloutPhase::Progressing},
            {"op": "test", "path": IDX, "value": c.current_step_index},
            {"op": "add", "path": ACTION, "value": RolloutAction::PromoteFull},
        ]))?),
        done: format!(
            "rollout '{n}' full promotion requested at step {at}: skipping the remaining steps"
        ),
        event: EventNote {
            reason: "PromoteFullRequested",
            action: "PromoteFull",
            what: format!("full promotion requested at step {at}"),
        },
        not_done: "not promoted",
    })
}

/// `pause` / `resume`: `spec.strategy.paused`.
pub fn set_paused(ro: &Rollout, paused: bool) -> Plan {
    let n = name(ro);
    let (word, reason, action) = if paused {
        ("paused", "Paused", "Pause")
    } else {
        ("resumed", "Resumed", "Resume")
    };
    if ro.spec.strategy.paused == paused {
        let state = if paused { "paused" } else { "not paused" };
        return Plan {
            write: Write::Nothing,
            done: format!("rollout '{n}' is already {state}"),
            event: EventNote {
                reason,
                action,
                what: String::new(),
            },
            not_done: "",
        };
    }
    Plan {
        write: Write::RolloutMerge(json!({"spec": {"strategy": {"paused": paused}}})),
        done: format!("rollout '{n}' {word}"),
        event: EventNote {
            reason,
            action,
            what: format!("rollout {word} at {}", position(ro)),
        },
        not_done: "",
    }
}

/// `undo`: put the Deployment's pod template back to the stable revision's,
/// taken from the stable ReplicaSet, guarded by the Deployment's resourceVersion.
pub fn undo(ro: &Rollout, deployment: &Deployment, replicasets: &[ReplicaSet]) -> Result<Plan> {
    let n = name(ro);
    let d_name = deployment.metadata.name.as_deref().unwrap_or_default();
    match phase(ro) {
        Some(RolloutPhase::Progressing | RolloutPhase::Aborted) => {}
        Some(p) => {
            return Err(Error::Refused(format!(
                "rollout '{n}' is {p}: there is no rollout in progress to undo (`kubectl rollout undo deployment/{d_name}` goes back to an older revision)"
            )));
        }
        None => return Err(not_progressing(ro, "undo")),
    }
    let stable = canary(ro)
        .map(|c| c.stable_revision.as_str())
        .unwrap_or_default();
    if stable.is_empty() {
        return Err(Error::Refused(format!(
            "rollout '{n}' has no stable revision recorded (status.canaryStatus.stableRevision); nothing to undo"
        )));
    }
    let owned = |rs: &&ReplicaSet| {
        rs.metadata.owner_references.iter().flatten().any(|o| {
            o.kind == "Deployment"
                && match (&deployment.metadata.uid, o.uid.as_str()) {
                    (Some(uid), ouid) => uid == ouid,
                    (None, _) => o.name == d_name,
                }
        })
    };
    let is_stable = |rs: &&ReplicaSet| {
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
            .is_some_and(|h| h == stable)
    };
    let Some(rs) = replicasets.iter().filter(owned).find(is_stable) else {
        return Err(Error::NotFound(format!(
            "no ReplicaSet of deployment '{d_name}' has {POD_TEMPLATE_HASH_LABEL}={stable} (the stable revision of rollout '{n}'); cannot undo"
        )));
    };
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| {
            Error::Api(format!(
                "ReplicaSet '{}' has no pod template; cannot undo rollout '{n}'",
                rs.metadata.name.as_deref().unwrap_or_default()
            ))
        })?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    let template = serde_json::to_value(&template)
        .map_err(|e| Error::Api(format!("serializing the pod template: {e}")))?;
    let current = deployment
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.template))
        .transpose()
        .map_err(|e| Error::Api(format!("serializing the pod template: {e}")))?;
    if current.as_ref() == Some(&template) {
        return Err(Error::Refused(format!(
            "deployment '{d_name}' already has the stable pod template ({POD_TEMPLATE_HASH_LABEL} {stable}) of rollout '{n}'; nothing to undo"
        )));
    }
    let Some(rv) = deployment.metadata.resource_version.as_deref() else {
        return Err(Error::Api(format!(
            "deployment '{d_name}' has no resourceVersion; cannot undo safely"
        )));
    };
    Ok(Plan {
        write: Write::Deployment {
            name: d_name.to_string(),
            patch: json_patch(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "replace", "path": "/spec/template", "value": template},
            ]))?,
        },
        done: format!(
            "rollout '{n}' undone: deployment '{d_name}' is back on the stable pod template ({POD_TEMPLATE_HASH_LABEL} {stable})"
        ),
        event: EventNote {
            reason: "UndoRequested",
            action: "Undo",
            what: format!(
                "deployment '{d_name}' set back to stable revision {stable} at {}",
                position(ro)
            ),
        },
        not_done: "not undone",
    })
}

/// The message when a guarded write failed: the rollout as read again.
pub fn race_message(now: &Rollout, not_done: &str) -> String {
    format!(
        "rollout '{}' moved on (now {}); {not_done}",
        name(now),
        position(now)
    )
}
