//! The step machine: one call to [`plan`] looks at the observed state and
//! makes at most one state transition. See the crate docs for the states.
//!
//! - this module: the planner, its context and helpers, and the states
//!   without a rollout under way (`idle`, `healthy`, `start`);
//! - [`steps`]: walking the steps (upgrade, traffic routing, pause, ready);
//! - [`actions`]: the user's actions (abort and the aborted state);
//! - [`finalising`]: restoring everything after the steps, an abort, a
//!   disable or a deletion, one finalising step at a time.

mod actions;
mod finalising;
mod steps;

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use ramp_api::names::{
    CONTROLLED_BY_LABEL, PAUSED_BY_RAMP_ANNOTATION, canary_service_name, canary_workload_name,
};
use ramp_api::{
    CanaryStatus, CustomNetworkRef, FieldError, FinalisingStep, MeasurementPhase, Rollout,
    RolloutAction, RolloutCondition, RolloutPhase, RolloutStatus, Step, StepState,
    TrafficRoutingRef, ValidSpec,
};

use crate::analysis;
use crate::error::PlanError;
use crate::hash::template_revision;
use crate::objects::{self, is_ours};
use crate::observed::Observed;
use crate::plan::{Action, EventType, Plan, PlannedEvent};
use crate::routing::{
    RoutingContext, RoutingVerdict, StepRouting, SubsetRouting, assess, is_destination_rule,
    is_virtual_service, object_label, original_of, provider_for, subset_routing,
    virtual_service_conflicts,
};
use crate::time::{remaining, to_k8s_time};

pub use crate::conditions::{
    PROGRESSING as CONDITION_PROGRESSING, SUCCEEDED as CONDITION_SUCCEEDED,
};
use crate::conditions::{PROGRESSING, SUCCEEDED, Status, reason};

/// Plan the next step for one Rollout. Pure: same input, same plan.
pub fn plan(observed: &Observed) -> Plan {
    Planner::new(observed).run()
}

/// Why a finalising sequence runs; decides its order and how it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// All steps done (or promote-full): the canary revision becomes stable.
    Promote,
    /// The workload's template went back to the stable revision.
    Rollback,
    /// A newer revision replaced the canary one: restore routing, then step 1.
    Restart,
    /// A user abort: restore routing, then hold with the canary at 0.
    Abort,
    /// The Rollout is being deleted.
    Terminate,
    /// `spec.disabled` was set.
    Disable,
}

impl Purpose {
    fn order(self) -> &'static [FinalisingStep] {
        use FinalisingStep::*;
        match self {
            Purpose::Promote => &[
                RestoreRouting,
                RestoreStableService,
                DeleteCanaryService,
                ResumeWorkload,
                DeleteCanaryWorkload,
            ],
            // The canary goes before the stable Service is widened again, so
            // a bad canary never receives stable traffic.
            Purpose::Rollback | Purpose::Terminate | Purpose::Disable => &[
                RestoreRouting,
                DeleteCanaryWorkload,
                RestoreStableService,
                DeleteCanaryService,
                ResumeWorkload,
            ],
            Purpose::Restart | Purpose::Abort => &[RestoreRouting],
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Purpose::Promote => "finishing",
            Purpose::Rollback => "rolling back",
            Purpose::Restart => "restarting for a new revision",
            Purpose::Abort => "aborting",
            Purpose::Terminate => "cleaning up before deletion",
            Purpose::Disable => "disabling",
        }
    }
}

fn moves_traffic(step: FinalisingStep) -> bool {
    matches!(
        step,
        FinalisingStep::RestoreRouting | FinalisingStep::RestoreStableService
    )
}

/// What a finalising step still has to do.
enum Work {
    Done,
    Act(Vec<Action>),
    Wait(String),
}

/// Spec facts: the validated spec, and what cleanup needs even when the
/// spec is invalid (the routing objects, read leniently).
struct Ctx<'a> {
    routing_ref: Option<&'a TrafficRoutingRef>,
    /// Every routing object, in order (`customNetworkRefs`, then
    /// `gateway.httpRouteName`).
    refs: Vec<CustomNetworkRef>,
    grace: Duration,
    /// The parsed spec, or every problem with it (then only cleanup acts).
    spec: Result<ValidSpec, Vec<FieldError>>,
    /// Every distinct routing the steps use.
    known: Vec<StepRouting>,
}

impl Ctx<'_> {
    /// Subset routing: a DestinationRule is among the routing objects. Then
    /// the VirtualServices route to its canary subset, the DestinationRule's
    /// stable subsets (not the stable Service) are narrowed to the stable
    /// pods, and there is no canary Service.
    fn subset_mode(&self) -> bool {
        self.refs
            .iter()
            .any(|r| is_destination_rule(&r.api_version, &r.kind))
    }

    /// The routing objects that carry the step's traffic split (all but the DestinationRule).
    fn route_refs(&self) -> impl Iterator<Item = &CustomNetworkRef> {
        self.refs
            .iter()
            .filter(|r| !is_destination_rule(&r.api_version, &r.kind))
    }

    fn destination_rule_refs(&self) -> impl Iterator<Item = &CustomNetworkRef> {
        self.refs
            .iter()
            .filter(|r| is_destination_rule(&r.api_version, &r.kind))
    }

    fn n(&self) -> i32 {
        self.spec.as_ref().map_or(0, ValidSpec::len)
    }

    /// Routing in force at step `i` (1-based; 0 = before any step).
    fn routing_at(&self, i: i32) -> Option<&StepRouting> {
        self.spec.as_ref().ok()?.routing_at(i)
    }

    fn step(&self, i: i32) -> Option<&Step> {
        self.spec.as_ref().ok()?.step(i)
    }
}

struct Planner<'a> {
    obs: &'a Observed,
    ro: &'a Rollout,
    name: String,
    namespace: String,
    now: DateTime<Utc>,
    old: RolloutStatus,
    status: RolloutStatus,
    /// Kept even when planning fails: they protect the workload.
    protect: Vec<Action>,
    /// Events about the protective actions (also kept on failure).
    protect_events: Vec<PlannedEvent>,
    actions: Vec<Action>,
    events: Vec<PlannedEvent>,
    requeue: Option<Duration>,
    cleanup_complete: bool,
}

impl<'a> Planner<'a> {
    fn new(obs: &'a Observed) -> Self {
        let ro = &obs.rollout;
        let old = ro.status.clone().unwrap_or_default();
        let mut status = old.clone();
        status.observed_generation = ro.metadata.generation;
        Planner {
            obs,
            ro,
            name: ro.metadata.name.clone().unwrap_or_default(),
            namespace: ro.metadata.namespace.clone().unwrap_or_default(),
            now: obs.now,
            old,
            status,
            protect: Vec::new(),
            protect_events: Vec::new(),
            actions: Vec::new(),
            events: Vec::new(),
            requeue: None,
            cleanup_complete: false,
        }
    }

    fn run(mut self) -> Plan {
        let ctx = self.ctx();
        let result = if self.ro.metadata.deletion_timestamp.is_some() {
            self.cleanup(&ctx, Purpose::Terminate)
        } else if self.ro.spec.disabled {
            self.cleanup(&ctx, Purpose::Disable)
        } else {
            self.active(&ctx)
        };
        let error = result.err();
        if let Some(e) = &error {
            self.fail(e);
        }
        let mut actions = std::mem::take(&mut self.protect);
        actions.append(&mut self.actions);
        let mut events = std::mem::take(&mut self.protect_events);
        events.append(&mut self.events);
        Plan {
            actions,
            status: self.status,
            requeue_after: self.requeue,
            events,
            error,
            cleanup_complete: self.cleanup_complete,
        }
    }

    // ----- context and helpers -------------------------------------------------

    fn ctx(&self) -> Ctx<'a> {
        let canary = self.ro.spec.strategy.canary.as_ref();
        let routing_ref = canary.and_then(|c| c.traffic_routings.first());
        let grace = routing_ref.map_or(
            ramp_api::TrafficRoutingRef::DEFAULT_GRACE_PERIOD_SECONDS,
            TrafficRoutingRef::grace_period,
        );
        let spec = ramp_api::validate(self.ro);
        let known = spec
            .as_ref()
            .map(ValidSpec::known_routings)
            .unwrap_or_default();
        Ctx {
            routing_ref,
            refs: routing_ref
                .map(TrafficRoutingRef::routing_refs)
                .unwrap_or_default(),
            grace: Duration::from_secs(u64::try_from(grace.max(0)).unwrap_or(0)),
            spec,
            known,
        }
    }

    /// Everything wrong with the spec (ramp-api's validation, shared with
    /// the admission webhook), or `None`.
    fn spec_problem(ctx: &Ctx<'_>) -> Option<PlanError> {
        let problems = ctx.spec.as_ref().err()?;
        Some(PlanError::InvalidSpec {
            problems: problems.iter().map(ToString::to_string).collect(),
        })
    }

    fn cs(&mut self) -> &mut CanaryStatus {
        self.status
            .canary_status
            .get_or_insert_with(Default::default)
    }

    /// A copy of the canary status as planned so far (default when none).
    fn cs_copy(&self) -> CanaryStatus {
        self.status.canary_status.clone().unwrap_or_default()
    }

    /// Record an event (once per plan: the same object may be looked at
    /// twice, e.g. a DestinationRule for isolation and for the canary subset).
    fn event(&mut self, type_: EventType, reason: &str, message: impl Into<String>) {
        let event = PlannedEvent {
            type_,
            reason: reason.into(),
            message: message.into(),
        };
        if !self.events.contains(&event) {
            self.events.push(event);
        }
    }

    fn message(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.status.message = Some(message.clone());
        if let Some(cs) = self.status.canary_status.as_mut() {
            cs.message = Some(message);
        }
    }

    fn condition(&mut self, type_: &str, status: Status, reason: &str, message: &str) {
        let status = status.as_str();
        let now = to_k8s_time(self.now);
        let conditions = &mut self.status.conditions;
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Some(now.clone());
                }
                if c.status != status
                    || c.reason.as_deref() != Some(reason)
                    || c.message.as_deref() != Some(message)
                {
                    c.status = status.into();
                    c.reason = Some(reason.into());
                    c.message = Some(message.into());
                    c.last_update_time = Some(now);
                }
            }
            None => conditions.push(RolloutCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            }),
        }
    }

    fn transition(&mut self, state: StepState) {
        let now = to_k8s_time(self.now);
        let cs = self.cs();
        cs.current_step_state = state;
        cs.last_update_time = Some(now);
    }

    fn requeue_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    fn fail(&mut self, e: &PlanError) {
        self.actions.clear();
        self.events.clear();
        self.requeue = None;
        self.status = self.old.clone();
        self.status.observed_generation = self.ro.metadata.generation;
        if self.status.phase.is_none() {
            self.status.phase = Some(RolloutPhase::Initial);
        }
        let text = e.to_string();
        // The error changes the reason and message, not whether a rollout
        // is under way.
        let cond_status = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == PROGRESSING)
            .map_or(Status::False, |c| Status::parse(&c.status));
        self.condition(PROGRESSING, cond_status, e.reason(), &text);
        self.message(text.clone());
        if self.old.message.as_deref() != Some(text.as_str()) {
            self.event(EventType::Warning, e.reason(), text);
        }
    }

    /// What routing providers need to know, without subset routing (see
    /// [`Self::routing_ctx`]).
    fn base_routing_ctx(&self, ctx: &Ctx<'_>) -> RoutingContext {
        let service = ctx
            .routing_ref
            .map(|r| r.service.clone())
            .unwrap_or_default();
        let cs = self.cs_copy();
        let stable_rs = self
            .obs
            .workload
            .as_ref()
            .and_then(|w| objects::find_rs(&self.obs.replica_sets, w, &cs.stable_revision));
        let stable_pod_labels = stable_rs
            .and_then(|rs| rs.spec.as_ref())
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let stable_pod_template_hash = stable_rs.and_then(objects::pod_hash_label).or_else(|| {
            self.obs
                .stable_service
                .as_ref()
                .and_then(objects::stable_isolation)
                .map(str::to_string)
        });
        RoutingContext {
            namespace: self.namespace.clone(),
            canary_service: canary_service_name(&service),
            stable_service: service,
            stable_pod_template_hash,
            canary_pod_template_hash: (!cs.pod_template_hash.is_empty())
                .then(|| cs.pod_template_hash.clone()),
            stable_pod_labels,
            canary_subset_name: ctx
                .routing_ref
                .map(|r| r.canary_subset().to_string())
                .unwrap_or_default(),
            subsets: None,
        }
    }

    /// What routing providers need to know. With subset routing this reads
    /// the DestinationRule's original: errors (a missing DestinationRule, one
    /// for another host, no stable subset) stop progress unless `lenient`
    /// (cleanup), where ramp still recognises its canary subset.
    fn routing_ctx(&self, ctx: &Ctx<'_>, lenient: bool) -> Result<RoutingContext, PlanError> {
        let mut rctx = self.base_routing_ctx(ctx);
        let Some(r) = ctx.destination_rule_refs().next() else {
            return Ok(rctx);
        };
        let label = format!("{} {}", r.kind, r.name);
        let found = match self.obs.routing_object(&r.api_version, &r.kind, &r.name) {
            None => Err(self.not_found(&r.kind, &r.name)),
            Some(live) => provider_for(&r.api_version, &r.kind)
                .ok_or_else(|| unsupported(r))
                .and_then(|p| Ok(original_of(p, live, &rctx)?))
                .and_then(|original| Ok(subset_routing(&label, &original.spec, &rctx)?)),
        };
        rctx.subsets = Some(match found {
            Ok(subsets) => subsets,
            Err(e) if !lenient => return Err(e),
            Err(_) => SubsetRouting {
                destination_rule: label,
                canary: rctx.canary_subset().to_string(),
                ..Default::default()
            },
        });
        Ok(rctx)
    }

    fn workload_name(&self) -> String {
        self.ro.spec.workload_ref.name.clone()
    }

    fn canary_name(&self) -> String {
        canary_workload_name(&self.workload_name())
    }

    fn not_found(&self, kind: &str, name: &str) -> PlanError {
        PlanError::NotFound {
            kind: kind.into(),
            name: name.into(),
            namespace: self.namespace.clone(),
        }
    }

    /// Protective: the workload must stay paused while a rollout is under way.
    fn keep_paused(&mut self, w: &Deployment) {
        let name = self.workload_name();
        let planned = self
            .protect
            .iter()
            .any(|a| matches!(a, Action::PatchDeployment { name: n, patch } if *n == name && patch["spec"]["paused"] == true));
        if objects::is_paused(w) || planned {
            return;
        }
        self.protect.push(Action::PatchDeployment {
            name: name.clone(),
            patch: objects::pause_patch(),
        });
        self.protect_events.push(PlannedEvent {
            type_: EventType::Warning,
            reason: "WorkloadNotPaused".into(),
            message: format!(
                "Deployment {name} was not paused during a rollout (is ramp's admission webhook installed?); ramp paused it now, but pods of the new revision may have started"
            ),
        });
    }

    fn keep_adopted(&mut self, w: &Deployment) {
        if objects::label(&w.metadata, CONTROLLED_BY_LABEL) != Some(self.name.as_str()) {
            self.protect.push(Action::PatchDeployment {
                name: self.workload_name(),
                patch: objects::adopt_patch(&self.name),
            });
        }
    }

    // ----- top level -------------------------------------------------------------

    fn active(&mut self, ctx: &Ctx<'a>) -> Result<(), PlanError> {
        if let Some(problem) = Self::spec_problem(ctx) {
            return Err(problem);
        }
        let Some(w) = self.obs.workload.as_ref() else {
            return Err(self.not_found("Deployment", &self.workload_name()));
        };
        self.keep_adopted(w);
        let generation = w.metadata.generation;
        if let Some(cs) = self.status.canary_status.as_mut() {
            cs.observed_workload_generation = generation;
        }
        let in_rollout = matches!(
            self.status.phase,
            Some(RolloutPhase::Progressing | RolloutPhase::Aborted)
        );
        if in_rollout && self.cs_copy().stable_revision.is_empty() {
            // The record of the stable revision was lost (status edited by
            // hand): find it again rather than treat everything as new.
            let stable = self.detect_stable(w, &Self::current_revision(w));
            self.cs().stable_revision = stable;
        }
        let cs = self.cs_copy();
        match self.status.phase {
            Some(RolloutPhase::Progressing) => {
                let finalising = cs
                    .finalising_step
                    .is_some_and(|f| f != FinalisingStep::Done);
                if finalising {
                    self.resume_finalising(ctx, w)
                } else {
                    self.steps(ctx, w)
                }
            }
            Some(RolloutPhase::Aborted) => self.aborted(ctx, w),
            _ => self.idle(ctx, w),
        }
    }

    /// Revision of the workload's current template.
    fn current_revision(w: &Deployment) -> String {
        template_revision(&objects::template_of(w))
    }

    // ----- no rollout under way -----------------------------------------------------

    fn idle(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let current = Self::current_revision(w);
        let cs = self.cs_copy();
        let was_healthy = self.status.phase == Some(RolloutPhase::Healthy);
        let stable = if was_healthy && !cs.stable_revision.is_empty() {
            cs.stable_revision.clone()
        } else {
            self.detect_stable(w, &current)
        };
        if current == stable {
            self.healthy(w, stable, was_healthy);
            // Report a missing or unusable Service / routing object now, not
            // only when the next template change starts a rollout. Only the
            // adoption label (protective) is kept: a template change made
            // meanwhile is held rather than rolled out without a canary.
            self.check_references(ctx)
        } else {
            self.start(w, stable, current)
        }
    }

    /// The revision the workload's pods run, when ramp has no record of it.
    fn detect_stable(&self, w: &Deployment, current: &str) -> String {
        let sets = objects::replica_sets_of(&self.obs.replica_sets, w);
        if sets.is_empty()
            || sets
                .iter()
                .any(|rs| objects::rs_revision(rs).as_deref() == Some(current))
        {
            return current.to_string();
        }
        sets.iter()
            .find(|rs| objects::rs_has_pods(rs))
            .and_then(|rs| objects::rs_revision(rs))
            .unwrap_or_else(|| current.to_string())
    }

    fn healthy(&mut self, w: &Deployment, stable: String, was_healthy: bool) {
        let workload = self.workload_name();
        if !was_healthy {
            let first = matches!(self.status.phase, None | Some(RolloutPhase::Initial));
            self.status.phase = Some(RolloutPhase::Healthy);
            let generation = w.metadata.generation;
            let cs = self.cs();
            cs.stable_revision = stable.clone();
            cs.canary_revision = stable.clone();
            cs.current_step_state = StepState::Completed;
            cs.finalising_step = None;
            cs.requested_action = None;
            cs.observed_workload_generation = generation;
            if first {
                self.event(
                    EventType::Normal,
                    "Initialized",
                    format!("Rollout controls Deployment {workload}, which runs revision {stable}"),
                );
            }
        }
        if let Some(action) = self.cs_copy().requested_action {
            self.cs().requested_action = None;
            self.event(
                EventType::Warning,
                "ActionIgnored",
                format!("{action} ignored: no rollout is under way"),
            );
        }
        // Left paused by ramp (for example, the template went back before a
        // rollout started): let it run again.
        if objects::is_paused(w) && objects::has_annotation(&w.metadata, PAUSED_BY_RAMP_ANNOTATION)
        {
            self.actions.push(Action::PatchDeployment {
                name: workload.clone(),
                patch: objects::resume_patch(false),
            });
        }
        let text = format!(
            "Deployment {workload} runs revision {stable}; a template change starts a canary rollout"
        );
        // A problem reported earlier (or a past disable) is over; the outcome
        // of the last rollout (Completed, RolledBack) stays.
        let stale = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == PROGRESSING)
            .is_some_and(|c| {
                !matches!(
                    c.reason.as_deref(),
                    Some("Completed" | "RolledBack" | "Healthy")
                )
            });
        if stale {
            self.condition(PROGRESSING, Status::False, reason::HEALTHY, &text);
        }
        // The outcome of the rollout that just ended says the same and more:
        // keep it (rewriting it would be a status write that tells nothing).
        let outcome = self.status.conditions.iter().any(|c| {
            c.type_ == PROGRESSING
                && matches!(c.reason.as_deref(), Some("Completed" | "RolledBack"))
                && c.message.is_some()
                && c.message == self.status.message
        });
        if !outcome {
            self.message(text);
        }
    }

    fn start(&mut self, w: &Deployment, stable: String, current: String) -> Result<(), PlanError> {
        let workload = self.workload_name();
        let n = self
            .ro
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len());
        self.keep_paused(w);
        self.status.phase = Some(RolloutPhase::Progressing);
        let now = to_k8s_time(self.now);
        self.status.canary_status = Some(CanaryStatus {
            observed_workload_generation: w.metadata.generation,
            stable_revision: stable.clone(),
            canary_revision: current.clone(),
            current_step_index: 1,
            current_step_state: StepState::BeforeStepUpgrade,
            last_update_time: Some(now),
            ..Default::default()
        });
        let text = format!(
            "Deployment {workload} changed from revision {stable} to {current}; starting canary step 1 of {n}"
        );
        self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
        self.condition(SUCCEEDED, Status::Unknown, reason::IN_ROLLING, &text);
        self.message(text.clone());
        self.event(EventType::Normal, "RolloutStarted", text);
        Ok(())
    }
}

fn pods(n: i32) -> String {
    if n == 1 {
        "1 pod".to_string()
    } else {
        format!("{n} pods")
    }
}

fn describe(step: FinalisingStep) -> &'static str {
    match step {
        FinalisingStep::RestoreRouting => {
            "restoring the routing objects to their original; waiting the grace period"
        }
        FinalisingStep::RestoreStableService => {
            "removing the pod-template-hash ramp added to the stable Service's selector (with subset routing: restoring the DestinationRule); waiting the grace period"
        }
        FinalisingStep::DeleteCanaryService => "deleting the canary Service",
        FinalisingStep::ResumeWorkload => "resuming the Deployment",
        FinalisingStep::DeleteCanaryWorkload => "deleting the canary Deployment",
        FinalisingStep::Done => "done",
    }
}

fn unsupported(r: &CustomNetworkRef) -> PlanError {
    crate::error::RoutingError::UnsupportedKind {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
    }
    .into()
}
