//! The step machine: one call to [`plan`] looks at the observed state and
//! makes at most one state transition. See the crate docs for the states.

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

/// Condition type: a rollout is (or is not) under way.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: how the last rollout ended.
pub const CONDITION_SUCCEEDED: &str = "Succeeded";

/// Plan the next step for one Rollout. Pure: same input, same plan.
pub fn plan(observed: &Observed) -> Plan {
    Planner::new(observed).run()
}

/// Why a finishing sequence runs; decides its order and how it ends.
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

/// What a finishing step still has to do.
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

    fn cs_ref(&self) -> CanaryStatus {
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

    fn condition(&mut self, type_: &str, status: &str, reason: &str, message: &str) {
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
        let cond_status = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_PROGRESSING)
            .map_or("False".to_string(), |c| c.status.clone());
        self.condition(CONDITION_PROGRESSING, &cond_status, e.reason(), &text);
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
        let cs = self.cs_ref();
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
        if in_rollout && self.cs_ref().stable_revision.is_empty() {
            // The record of the stable revision was lost (status edited by
            // hand): find it again rather than treat everything as new.
            let stable = self.detect_stable(w, &Self::current_revision(w));
            self.cs().stable_revision = stable;
        }
        let cs = self.cs_ref();
        match self.status.phase {
            Some(RolloutPhase::Progressing) => {
                let finishing = cs
                    .finalising_step
                    .is_some_and(|f| f != FinalisingStep::Done);
                if finishing {
                    self.finishing(ctx, w)
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
        let cs = self.cs_ref();
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
        if let Some(action) = self.cs_ref().requested_action {
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
            .find(|c| c.type_ == CONDITION_PROGRESSING)
            .is_some_and(|c| {
                !matches!(
                    c.reason.as_deref(),
                    Some("Completed" | "RolledBack" | "Healthy")
                )
            });
        if stale {
            self.condition(CONDITION_PROGRESSING, "False", "Healthy", &text);
        }
        // The outcome of the rollout that just ended says the same and more:
        // keep it (rewriting it would be a status write that tells nothing).
        let outcome = self.status.conditions.iter().any(|c| {
            c.type_ == CONDITION_PROGRESSING
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
        self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
        self.condition(CONDITION_SUCCEEDED, "Unknown", "InRolling", &text);
        self.message(text.clone());
        self.event(EventType::Normal, "RolloutStarted", text);
        Ok(())
    }

    // ----- steps -----------------------------------------------------------------

    /// The revision situation of a rollout under way, or `None` when the
    /// workload still has the canary revision.
    fn revision_change(&self, w: &Deployment) -> Option<Purpose> {
        let cs = self.cs_ref();
        let current = Self::current_revision(w);
        if current == cs.stable_revision {
            Some(Purpose::Rollback)
        } else if current != cs.canary_revision {
            Some(Purpose::Restart)
        } else {
            None
        }
    }

    fn hold_if_paused(&mut self) -> bool {
        if !self.ro.spec.strategy.paused {
            return false;
        }
        let cs = self.cs_ref();
        let text = format!(
            "paused by spec.strategy.paused at step {} ({}); set it to false to continue",
            cs.current_step_index, cs.current_step_state
        );
        self.condition(CONDITION_PROGRESSING, "True", "Paused", &text);
        if self.old.message.as_deref() != Some(text.as_str()) {
            self.event(EventType::Normal, "Paused", text.clone());
        }
        self.message(text);
        true
    }

    fn steps(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let cs = self.cs_ref();
        if cs.requested_action == Some(RolloutAction::Abort) {
            return self.abort(ctx, w);
        }
        if self.hold_if_paused() {
            self.keep_paused(w);
            return Ok(());
        }
        if let Some(purpose) = self.revision_change(w) {
            return self.enter_finishing(ctx, w, purpose);
        }
        match cs.requested_action {
            Some(RolloutAction::PromoteFull) => {
                self.cs().requested_action = None;
                self.event(
                    EventType::Normal,
                    "PromoteFull",
                    format!(
                        "promote-full requested at step {}: skipping the remaining steps",
                        cs.current_step_index
                    ),
                );
                return self.enter_finishing(ctx, w, Purpose::Promote);
            }
            Some(RolloutAction::Retry) => {
                self.cs().requested_action = None;
                self.event(
                    EventType::Warning,
                    "ActionIgnored",
                    "Retry ignored: the rollout is not aborted",
                );
            }
            _ => {}
        }
        self.keep_paused(w);

        let n = ctx.n();
        let i = cs.current_step_index.clamp(1, n.max(1));
        if i != cs.current_step_index {
            self.cs().current_step_index = i;
        }
        match cs.current_step_state {
            StepState::BeforeStepUpgrade => self.before_step_upgrade(ctx, w, i),
            StepState::StepUpgrade => self.step_upgrade(ctx, w, i),
            StepState::StepTrafficRouting => self.step_traffic_routing(ctx, w, i),
            StepState::StepPaused => self.step_paused(ctx, w, i),
            StepState::StepReady => self.step_ready(ctx, w, i),
            StepState::Completed => self.enter_finishing(ctx, w, Purpose::Promote),
        }
    }

    fn desired_canary(
        &self,
        ctx: &Ctx<'_>,
        w: &Deployment,
        i: i32,
    ) -> Result<Deployment, PlanError> {
        let step = ctx.step(i).ok_or_else(|| PlanError::InvalidSpec {
            problems: vec![format!(
                "spec.strategy.canary.steps: step {i} does not exist"
            )],
        })?;
        let field = format!("spec.strategy.canary.steps[{}].replicas", i - 1);
        let replicas = step.replicas.resolve(objects::spec_replicas(w));
        if replicas < 1
            && let Some(m) = ctx.routing_at(i).and_then(|r| r.mirror)
        {
            return Err(PlanError::InvalidSpec {
                problems: vec![format!(
                    "{field}: step {i} mirrors {m}% of requests to the canary, which needs at least one canary pod, but the replicas resolve to 0 (Deployment {} has {} replicas); give the step at least 1 replica",
                    self.workload_name(),
                    objects::spec_replicas(w)
                )],
            });
        }
        Ok(objects::canary_deployment(self.ro, w, replicas))
    }

    /// Push an apply of the canary Deployment if it differs. Returns whether it did.
    fn ensure_canary_workload(&mut self, desired: &Deployment) -> Result<bool, PlanError> {
        match self.obs.canary_workload.as_ref() {
            Some(c) if !is_ours(&c.metadata, self.ro) => Err(PlanError::NotOwned {
                kind: "Deployment".into(),
                name: self.canary_name(),
                rollout: self.name.clone(),
            }),
            Some(c) if !objects::deployment_differs(c, desired) => Ok(false),
            _ => {
                self.actions
                    .push(Action::ApplyDeployment(Box::new(desired.clone())));
                Ok(true)
            }
        }
    }

    fn stable_service_name(ctx: &Ctx<'_>) -> String {
        ctx.routing_ref
            .map(|r| r.service.clone())
            .unwrap_or_default()
    }

    /// `pod-template-hash` of the pods running the stable revision.
    fn stable_pod_hash(&self, w: &Deployment) -> Result<String, PlanError> {
        let revision = self.cs_ref().stable_revision;
        objects::find_rs(&self.obs.replica_sets, w, &revision)
            .and_then(objects::pod_hash_label)
            .ok_or_else(|| PlanError::NoStableReplicaSet {
                workload: self.workload_name(),
                revision,
            })
    }

    /// Narrow the stable Service to the stable pods (with subset routing:
    /// the DestinationRule's stable subsets, and the Service stays whole so
    /// that the canary subset has endpoints). Returns whether it changed.
    fn ensure_isolation(&mut self, ctx: &Ctx<'_>, w: &Deployment) -> Result<bool, PlanError> {
        let name = Self::stable_service_name(ctx);
        let Some(svc) = self.obs.stable_service.as_ref() else {
            return Err(self.not_found("Service", &name));
        };
        let hash = self.stable_pod_hash(w)?;
        if ctx.subset_mode() {
            let mut changed = false;
            if objects::stable_isolation(svc).is_some() {
                self.actions.push(Action::PatchService {
                    name,
                    patch: objects::unisolate_patch(),
                });
                changed = true;
            }
            return Ok(self.ensure_destination_rules(ctx, false)? || changed);
        }
        if objects::isolated_with(svc, &hash) {
            return Ok(false);
        }
        self.actions.push(Action::PatchService {
            name,
            patch: objects::isolate_patch(&hash),
        });
        Ok(true)
    }

    /// `pod-template-hash` of the canary pods, from the canary's ReplicaSet.
    fn canary_pod_hash(&self) -> Option<String> {
        let canary = self.obs.canary_workload.as_ref()?;
        let revision = template_revision(&objects::template_of(canary));
        objects::find_rs(&self.obs.replica_sets, canary, &revision)
            .and_then(objects::pod_hash_label)
    }

    /// Make the canary reachable: the canary Service, or with subset routing
    /// the DestinationRule's canary subset (the canary pods' hash is in the
    /// status by now). Returns whether anything changed.
    fn ensure_canary_service(&mut self, ctx: &Ctx<'_>, hash: &str) -> Result<bool, PlanError> {
        if ctx.subset_mode() {
            return self.ensure_destination_rules(ctx, false);
        }
        let name = Self::stable_service_name(ctx);
        let Some(stable) = self.obs.stable_service.as_ref() else {
            return Err(self.not_found("Service", &name));
        };
        let desired = objects::canary_service(self.ro, stable, hash);
        match self.obs.canary_service.as_ref() {
            Some(c) if !is_ours(&c.metadata, self.ro) => Err(PlanError::NotOwned {
                kind: "Service".into(),
                name: canary_service_name(&name),
                rollout: self.name.clone(),
            }),
            Some(c) if !objects::service_differs(c, &desired) => Ok(false),
            _ => {
                self.actions.push(Action::ApplyService(Box::new(desired)));
                Ok(true)
            }
        }
    }

    /// Bring every routing object except DestinationRules to `wanted`
    /// (`None`: the original). Missing objects are errors unless `lenient`
    /// (cleanup); unless `lenient`, conflicting VirtualServices are too.
    /// Returns whether any patch was planned.
    fn ensure_routing(
        &mut self,
        ctx: &Ctx<'_>,
        wanted: Option<&StepRouting>,
        lenient: bool,
    ) -> Result<bool, PlanError> {
        if ctx.routing_ref.is_none() {
            return Ok(false);
        }
        let rctx = self.routing_ctx(ctx, lenient)?;
        if !lenient {
            self.check_conflicts(ctx, &rctx)?;
        }
        let refs: Vec<CustomNetworkRef> = ctx.route_refs().cloned().collect();
        let mut changed = false;
        for r in &refs {
            changed |= self.ensure_object(ctx, r, wanted, lenient, &rctx)?;
        }
        Ok(changed)
    }

    /// Bring the DestinationRules to what the rollout needs (stable subsets
    /// narrowed, the canary subset once its pods' hash is known), or with
    /// `restore` back to their originals (always lenient).
    fn ensure_destination_rules(
        &mut self,
        ctx: &Ctx<'_>,
        restore: bool,
    ) -> Result<bool, PlanError> {
        let rctx = self.routing_ctx(ctx, restore)?;
        let refs: Vec<CustomNetworkRef> = ctx.destination_rule_refs().cloned().collect();
        let wanted = StepRouting::default();
        let wanted = (!restore).then_some(&wanted);
        let mut changed = false;
        for r in &refs {
            changed |= self.ensure_object(ctx, r, wanted, restore, &rctx)?;
        }
        Ok(changed)
    }

    /// Bring one routing object to `wanted`. Returns whether a patch was planned.
    fn ensure_object(
        &mut self,
        ctx: &Ctx<'_>,
        r: &CustomNetworkRef,
        wanted: Option<&StepRouting>,
        lenient: bool,
        rctx: &RoutingContext,
    ) -> Result<bool, PlanError> {
        let Some(live) = self.obs.routing_object(&r.api_version, &r.kind, &r.name) else {
            if lenient {
                return Ok(false);
            }
            return Err(self.not_found(&r.kind, &r.name));
        };
        let Some(provider) = provider_for(&r.api_version, &r.kind) else {
            if lenient {
                return Ok(false);
            }
            return Err(unsupported(r));
        };
        let desired = match assess(provider, live, wanted, &ctx.known, rctx)? {
            RoutingVerdict::InSync => return Ok(false),
            RoutingVerdict::Behind { desired } => desired,
            RoutingVerdict::Drifted { desired, .. } => {
                let what = match wanted {
                    Some(_) => format!("step {}", self.cs_ref().current_step_index),
                    None => "the original routing".to_string(),
                };
                self.event(
                    EventType::Warning,
                    "RoutingDrift",
                    format!(
                        "{} was changed by someone else; ramp keeps that change as the new original and re-applies {what}",
                        object_label(live)
                    ),
                );
                desired
            }
        };
        let Some(patch) = crate::routing::routing_patch(live, &desired) else {
            return Ok(false);
        };
        let action = Action::PatchRouting {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            patch,
        };
        // One patch per object and plan: a later one (computed from the same
        // live object, so with the same resourceVersion test) replaces an
        // earlier one in place, keeping the order of objects.
        let earlier = self.actions.iter().position(|a| {
            matches!(a, Action::PatchRouting { kind, name, .. } if *kind == r.kind && *name == r.name)
        });
        match earlier {
            Some(i) => self.actions[i] = action,
            None => self.actions.push(action),
        }
        Ok(true)
    }

    /// Istio IST0109: no other VirtualService of the namespace may claim a
    /// host (for a gateway) that a VirtualService ramp changes claims.
    fn check_conflicts(&self, ctx: &Ctx<'_>, rctx: &RoutingContext) -> Result<(), PlanError> {
        let changed: Vec<&serde_json::Value> = ctx
            .route_refs()
            .filter(|r| is_virtual_service(&r.api_version, &r.kind))
            .filter_map(|r| self.obs.routing_object(&r.api_version, &r.kind, &r.name))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        virtual_service_conflicts(&changed, &self.obs.namespace_virtual_services, rctx)?;
        Ok(())
    }

    /// Before anything is created: every object exists, belongs where it
    /// should, and every step's routing can be computed.
    fn preflight(&self, ctx: &Ctx<'_>, w: &Deployment) -> Result<(), PlanError> {
        let service = Self::stable_service_name(ctx);
        if self.obs.stable_service.is_none() {
            return Err(self.not_found("Service", &service));
        }
        if let Some(c) = self.obs.canary_service.as_ref()
            && !is_ours(&c.metadata, self.ro)
        {
            return Err(PlanError::NotOwned {
                kind: "Service".into(),
                name: canary_service_name(&service),
                rollout: self.name.clone(),
            });
        }
        if let Some(c) = self.obs.canary_workload.as_ref()
            && !is_ours(&c.metadata, self.ro)
        {
            return Err(PlanError::NotOwned {
                kind: "Deployment".into(),
                name: self.canary_name(),
                rollout: self.name.clone(),
            });
        }
        self.stable_pod_hash(w)?;
        self.check_routing(ctx)
    }

    /// The stable Service and every routing object exist, and every step's
    /// routing can be computed from the routing objects.
    fn check_references(&self, ctx: &Ctx<'_>) -> Result<(), PlanError> {
        let service = Self::stable_service_name(ctx);
        if self.obs.stable_service.is_none() {
            return Err(self.not_found("Service", &service));
        }
        self.check_routing(ctx)
    }

    /// Every routing object exists, is of a supported kind, routes to the
    /// stable Service, and takes every step's routing.
    fn check_routing(&self, ctx: &Ctx<'_>) -> Result<(), PlanError> {
        let rctx = self.routing_ctx(ctx, false)?;
        for r in &ctx.refs {
            let live = self
                .obs
                .routing_object(&r.api_version, &r.kind, &r.name)
                .ok_or_else(|| self.not_found(&r.kind, &r.name))?;
            let provider = provider_for(&r.api_version, &r.kind).ok_or_else(|| unsupported(r))?;
            let original = original_of(provider, live, &rctx)?;
            let label = object_label(live);
            provider.check(&label, &original.spec, &rctx)?;
            for step in &ctx.known {
                provider.step_spec(&label, &original.spec, step, &rctx)?;
            }
        }
        self.check_conflicts(ctx, &rctx)?;
        Ok(())
    }

    fn step_text(ctx: &Ctx<'_>, i: i32) -> String {
        let mut parts = Vec::new();
        if let Some(r) = ctx.routing_at(i) {
            if let Some(w) = r.weight {
                parts.push(format!("{w}% of traffic"));
            }
            if !r.matches.is_empty() {
                parts.push("matching requests".to_string());
            }
        }
        let mut text = if parts.is_empty() {
            "no traffic".to_string()
        } else {
            parts.join(" and ")
        };
        if let Some(m) = ctx.routing_at(i).and_then(|r| r.mirror) {
            text.push_str(&format!(
                " plus a copy of {m}% of the stable requests (mirrored; the canary's answers are discarded)"
            ));
        }
        text
    }

    fn before_step_upgrade(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        i: i32,
    ) -> Result<(), PlanError> {
        self.preflight(ctx, w)?;
        let desired = self.desired_canary(ctx, w, i)?;
        self.ensure_isolation(ctx, w)?;
        self.ensure_canary_workload(&desired)?;
        let replicas = desired.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        self.cs().canary_replicas = replicas;
        self.transition(StepState::StepUpgrade);
        let text = format!(
            "step {i}/{}: scaling canary Deployment {} to {}",
            ctx.n(),
            self.canary_name(),
            pods(replicas)
        );
        self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepUpgrade", text);
        Ok(())
    }

    fn step_upgrade(&mut self, ctx: &Ctx<'a>, w: &Deployment, i: i32) -> Result<(), PlanError> {
        let desired = self.desired_canary(ctx, w, i)?;
        let replicas = desired.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        self.ensure_isolation(ctx, w)?;
        let changed = self.ensure_canary_workload(&desired)?;
        let canary = self.obs.canary_workload.as_ref();
        let ready = canary.map_or(0, objects::ready_replicas);
        {
            let cs = self.cs();
            cs.canary_replicas = replicas;
            cs.canary_ready_replicas = ready;
        }
        let is_ready = !changed && canary.is_some_and(|c| objects::deployment_ready(c, replicas));
        let hash = if is_ready {
            self.canary_pod_hash()
        } else {
            None
        };
        let Some(hash) = hash else {
            // Still upgrading: keep the previous step's routing as it should be.
            self.ensure_routing(ctx, ctx.routing_at(i - 1), false)?;
            let mut text = format!(
                "step {i}/{}: waiting for canary Deployment {}: {ready}/{replicas} pods ready",
                ctx.n(),
                self.canary_name()
            );
            if let Some(c) = canary {
                let updated = objects::updated_replicas(c);
                if updated < replicas {
                    text.push_str(&format!(", {updated}/{replicas} on the new template"));
                }
            }
            let problems = objects::pod_problems(&self.obs.canary_pods);
            if !problems.is_empty() {
                text.push_str(&format!("; {}", problems.join("; ")));
            }
            if is_ready {
                text.push_str("; its ReplicaSet is not observed yet");
            }
            self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
            self.message(text);
            return Ok(());
        };
        self.cs().pod_template_hash = hash.clone();
        self.ensure_canary_service(ctx, &hash)?;
        self.ensure_routing(ctx, ctx.routing_at(i), false)?;
        self.transition(StepState::StepTrafficRouting);
        self.requeue_in(ctx.grace);
        let text = format!(
            "step {i}/{}: {} ready; routing {} to the canary",
            ctx.n(),
            pods(replicas),
            Self::step_text(ctx, i)
        );
        self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepTrafficRouting", text);
        Ok(())
    }

    /// Keep the step's world as it should be (drift, deleted objects).
    /// Returns whether routing or a Service changed.
    fn ensure_step(&mut self, ctx: &Ctx<'a>, w: &Deployment, i: i32) -> Result<bool, PlanError> {
        let desired = self.desired_canary(ctx, w, i)?;
        let mut changed = self.ensure_isolation(ctx, w)?;
        self.ensure_canary_workload(&desired)?;
        if let Some(c) = self.obs.canary_workload.as_ref() {
            self.cs().canary_ready_replicas = objects::ready_replicas(c);
        }
        let hash = match self.canary_pod_hash() {
            Some(h) => h,
            None => self.cs_ref().pod_template_hash,
        };
        if !hash.is_empty() {
            self.cs().pod_template_hash = hash.clone();
            changed |= self.ensure_canary_service(ctx, &hash)?;
        }
        changed |= self.ensure_routing(ctx, ctx.routing_at(i), false)?;
        Ok(changed)
    }

    fn step_traffic_routing(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        i: i32,
    ) -> Result<(), PlanError> {
        if self.ensure_step(ctx, w, i)? {
            let now = to_k8s_time(self.now);
            self.cs().last_update_time = Some(now);
            self.requeue_in(ctx.grace);
            return Ok(());
        }
        let since = self.cs_ref().last_update_time;
        if let Some(left) = remaining(self.now, since.as_ref(), ctx.grace) {
            self.requeue_in(left);
            return Ok(());
        }
        self.transition(StepState::StepPaused);
        let pause = ctx.step(i).and_then(|s| s.pause_seconds);
        let text = self.paused_text(ctx, i);
        if let Some(d) = pause {
            self.requeue_in(Duration::from_secs(u64::try_from(d.max(0)).unwrap_or(0)));
        }
        if let Some(first) = analysis::first_measurement_in(self.ro) {
            self.requeue_in(first);
            // The step starts its own records (not measured yet).
            if let Some(j) = analysis::judge_step(self.obs, &self.cs_ref()) {
                self.cs().analysis = j.records;
            }
        }
        self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepPaused", text);
        Ok(())
    }

    /// What a paused step waits for, in words.
    fn paused_text(&self, ctx: &Ctx<'_>, i: i32) -> String {
        let n = ctx.n();
        match ctx.step(i).and_then(|s| s.pause_seconds) {
            Some(d) => format!(
                "step {i}/{n}: canary receives {}; pausing {d}s before the next step",
                Self::step_text(ctx, i)
            ),
            None => format!(
                "step {i}/{n}: canary receives {}; waiting for approval (kubectl ramp approve {})",
                Self::step_text(ctx, i),
                self.name
            ),
        }
    }

    fn step_paused(&mut self, ctx: &Ctx<'a>, w: &Deployment, i: i32) -> Result<(), PlanError> {
        let judgement = analysis::judge_step(self.obs, &self.cs_ref());
        if let Some(j) = &judgement {
            self.record_analysis(i, j);
            if let Some(detail) = &j.abort {
                return self.abort_with(ctx, w, "AnalysisFailed", detail);
            }
        }
        self.ensure_step(ctx, w, i)?;
        let pause = ctx.step(i).and_then(|s| s.pause_seconds);
        if let Some(j) = &judgement {
            self.requeue_in(j.next_in.max(Duration::from_secs(1)));
        }
        let Some(d) = pause else {
            if let Some(j) = &judgement {
                self.analysis_message(ctx, i, j);
            }
            return Ok(());
        };
        let since = self.cs_ref().last_update_time;
        let wait = Duration::from_secs(u64::try_from(d.max(0)).unwrap_or(0));
        if let Some(left) = remaining(self.now, since.as_ref(), wait) {
            self.requeue_in(left);
            if let Some(j) = &judgement {
                self.analysis_message(ctx, i, j);
            }
            return Ok(());
        }
        // The step's world is as it should be only if nothing was re-applied.
        if !self.actions.is_empty() {
            return Ok(());
        }
        if let Some(j) = &judgement
            && !j.ready
        {
            // NoData and Error never promote: hold, saying what is missing.
            let (reason, detail) = j.hold.clone().unwrap_or(("AnalysisPending", String::new()));
            let text = format!(
                "step {i}/{}: pause of {d}s is over; holding until every metric passes: {detail}",
                ctx.n()
            );
            self.condition(CONDITION_PROGRESSING, "True", reason, &text);
            self.message(text);
            return Ok(());
        }
        self.transition(StepState::StepReady);
        let mut text = format!("step {i}/{}: pause of {d}s is over", ctx.n());
        if let Some(j) = &judgement {
            text.push_str(&format!("; analysis passed: {}", j.summary));
        }
        self.message(text.clone());
        self.event(EventType::Normal, "StepReady", text);
        Ok(())
    }

    /// Write the analysis records and an event for each metric whose phase changed.
    fn record_analysis(&mut self, i: i32, j: &analysis::Judgement) {
        self.cs().analysis = j.records.clone();
        for (_, _, phase, detail) in &j.changes {
            let (type_, reason) = match phase {
                MeasurementPhase::Passed => (EventType::Normal, "AnalysisPassed"),
                MeasurementPhase::Failed => (EventType::Warning, "AnalysisFailing"),
                MeasurementPhase::NoData => (EventType::Warning, "AnalysisNoData"),
                MeasurementPhase::Error => (EventType::Warning, "AnalysisError"),
            };
            self.event(type_, reason, format!("step {i}: {detail}"));
        }
    }

    /// The paused step's message with the analysis results; the condition
    /// names what holds the step (NoData, Error, a failure below the limit).
    fn analysis_message(&mut self, ctx: &Ctx<'_>, i: i32, j: &analysis::Judgement) {
        let text = format!("{}; analysis: {}", self.paused_text(ctx, i), j.summary);
        let reason = match &j.hold {
            Some((r, _)) if *r != "AnalysisPending" => r,
            _ => "InRolling",
        };
        self.condition(CONDITION_PROGRESSING, "True", reason, &text);
        self.message(text);
    }

    fn step_ready(&mut self, ctx: &Ctx<'a>, w: &Deployment, i: i32) -> Result<(), PlanError> {
        if i >= ctx.n() {
            return self.enter_finishing(ctx, w, Purpose::Promote);
        }
        let next = i + 1;
        // The next step exists to move traffic: when routing cannot be
        // changed now (a conflicting VirtualService appeared, a routing
        // object went missing), stay at this step with the reason instead
        // of scaling the canary for traffic that cannot follow.
        self.check_routing(ctx)?;
        let desired = self.desired_canary(ctx, w, next)?;
        self.ensure_isolation(ctx, w)?;
        self.ensure_canary_workload(&desired)?;
        let replicas = desired.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        {
            let cs = self.cs();
            cs.current_step_index = next;
            cs.canary_replicas = replicas;
        }
        self.transition(StepState::StepUpgrade);
        let text = format!(
            "step {next}/{}: scaling canary Deployment {} to {}",
            ctx.n(),
            self.canary_name(),
            pods(replicas)
        );
        self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepUpgrade", text);
        Ok(())
    }

    // ----- user actions ------------------------------------------------------------

    fn abort(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let i = self.cs_ref().current_step_index;
        self.abort_with(ctx, w, "Aborted", &format!("aborted at step {i}"))
    }

    /// Abort as `kubectl ramp abort` does, with `reason` and `why` (the
    /// start of the message) in the conditions, the Warning event and the message.
    fn abort_with(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        reason: &str,
        why: &str,
    ) -> Result<(), PlanError> {
        let cs = self.cs_ref();
        self.status.phase = Some(RolloutPhase::Aborted);
        self.cs().requested_action = None;
        let text = format!(
            "{why}: traffic goes back to revision {}, the canary is scaled to 0 and Deployment {} stays paused; retry, or change the template back",
            cs.stable_revision,
            self.workload_name()
        );
        self.condition(CONDITION_PROGRESSING, "False", reason, &text);
        self.condition(CONDITION_SUCCEEDED, "False", reason, &text);
        self.event(EventType::Warning, reason, text.clone());
        self.message(text);
        self.keep_paused(w);
        self.finalise(ctx, Some(w), Purpose::Abort, None)
    }

    fn aborted(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let cs = self.cs_ref();
        let restoring = cs
            .finalising_step
            .is_some_and(|f| f != FinalisingStep::Done);
        if restoring && self.revision_change(w).is_none() {
            // Abort is honoured even under spec.strategy.paused.
            self.keep_paused(w);
            return self.finalise(ctx, Some(w), Purpose::Abort, cs.finalising_step);
        }
        if cs.requested_action == Some(RolloutAction::Abort) {
            self.cs().requested_action = None;
        }
        if self.hold_if_paused() {
            self.keep_paused(w);
            return Ok(());
        }
        if let Some(purpose) = self.revision_change(w) {
            self.status.phase = Some(RolloutPhase::Progressing);
            return self.enter_finishing(ctx, w, purpose);
        }
        match cs.requested_action {
            Some(RolloutAction::Retry) => {
                self.status.phase = Some(RolloutPhase::Progressing);
                {
                    let cs = self.cs();
                    cs.requested_action = None;
                    cs.current_step_index = 1;
                    cs.finalising_step = None;
                }
                self.transition(StepState::BeforeStepUpgrade);
                let text = format!(
                    "retry requested: starting again at step 1 with revision {}",
                    cs.canary_revision
                );
                self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
                self.condition(CONDITION_SUCCEEDED, "Unknown", "InRolling", &text);
                self.event(EventType::Normal, "Retry", text.clone());
                self.message(text);
                return Ok(());
            }
            Some(RolloutAction::PromoteFull) => {
                self.status.phase = Some(RolloutPhase::Progressing);
                self.cs().requested_action = None;
                self.event(
                    EventType::Normal,
                    "PromoteFull",
                    "promote-full requested after an abort: finishing the rollout",
                );
                self.condition(CONDITION_SUCCEEDED, "Unknown", "InRolling", "promote-full");
                return self.enter_finishing(ctx, w, Purpose::Promote);
            }
            _ => {}
        }
        self.aborted_settled(w);
        Ok(())
    }

    /// After an abort: canary at 0 replicas, workload paused.
    fn aborted_settled(&mut self, w: &Deployment) {
        self.keep_paused(w);
        if let Some(c) = self.obs.canary_workload.as_ref()
            && is_ours(&c.metadata, self.ro)
            && c.spec.as_ref().and_then(|s| s.replicas) != Some(0)
        {
            self.actions.push(Action::PatchDeployment {
                name: self.canary_name(),
                patch: objects::scale_patch(0),
            });
        }
        let ready = self
            .obs
            .canary_workload
            .as_ref()
            .map_or(0, objects::ready_replicas);
        let cs = self.cs();
        cs.canary_replicas = 0;
        cs.canary_ready_replicas = ready;
        let cs = self.cs_ref();
        let why = self
            .status
            .conditions
            .iter()
            .find(|c| {
                c.type_ == CONDITION_SUCCEEDED && c.reason.as_deref() == Some("AnalysisFailed")
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.split_once(": traffic goes back"))
            .map_or(
                format!("aborted at step {}", cs.current_step_index),
                |(why, _)| why.to_string(),
            );
        self.message(format!(
            "{why}: all traffic on revision {}, canary scaled to 0; request Retry to start again, or change the template back to roll back",
            cs.stable_revision
        ));
    }

    // ----- finishing ---------------------------------------------------------------

    fn enter_finishing(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        purpose: Purpose,
    ) -> Result<(), PlanError> {
        let cs = self.cs_ref();
        let text = match purpose {
            Purpose::Promote => format!(
                "all steps done: restoring routing, then rolling Deployment {} out to revision {}",
                self.workload_name(),
                cs.canary_revision
            ),
            Purpose::Rollback => format!(
                "Deployment {} went back to the stable revision {}: restoring routing, then removing the canary",
                self.workload_name(),
                cs.stable_revision
            ),
            Purpose::Restart => format!(
                "Deployment {} changed to revision {} during the rollout of {}: restoring routing, then starting again at step 1",
                self.workload_name(),
                Self::current_revision(w),
                cs.canary_revision
            ),
            _ => purpose.verb().to_string(),
        };
        let reason = match purpose {
            Purpose::Promote => "Finalising",
            Purpose::Rollback => "RollingBack",
            Purpose::Restart => "NewRevision",
            _ => "Finalising",
        };
        if purpose == Purpose::Promote {
            self.transition(StepState::Completed);
        }
        self.condition(CONDITION_PROGRESSING, "True", reason, &text);
        self.event(EventType::Normal, reason, text.clone());
        self.message(text);
        self.finalise(ctx, Some(w), purpose, None)
    }

    /// Continue a finishing sequence under way in phase Progressing.
    fn finishing(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let cs = self.cs_ref();
        if self.hold_if_paused() {
            return Ok(());
        }
        let purpose = self.revision_change(w).unwrap_or(Purpose::Promote);
        if purpose == Purpose::Promote && cs.current_step_state != StepState::Completed {
            self.transition(StepState::Completed);
        }
        if cs.requested_action.is_some() {
            self.cs().requested_action = None;
            self.event(
                EventType::Warning,
                "ActionIgnored",
                format!(
                    "{} ignored: the rollout is already {}",
                    cs.requested_action
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    purpose.verb()
                ),
            );
        }
        self.finalise(ctx, Some(w), purpose, cs.finalising_step)
    }

    fn cleanup(&mut self, ctx: &Ctx<'a>, purpose: Purpose) -> Result<(), PlanError> {
        let phase = match purpose {
            Purpose::Terminate => RolloutPhase::Terminating,
            _ => RolloutPhase::Disabling,
        };
        if purpose == Purpose::Disable && self.status.phase == Some(RolloutPhase::Disabled) {
            self.message("disabled: ramp leaves the Deployment and its routing alone");
            return Ok(());
        }
        let entering = self.status.phase != Some(phase);
        let persisted = if entering {
            None
        } else {
            self.cs_ref().finalising_step
        };
        if entering {
            self.status.phase = Some(phase);
            let text = format!(
                "{}: restoring routing and Services, removing the canary, releasing Deployment {}",
                purpose.verb(),
                self.workload_name()
            );
            let reason = if purpose == Purpose::Terminate {
                "Terminating"
            } else {
                "Disabling"
            };
            self.condition(CONDITION_PROGRESSING, "False", reason, &text);
            self.event(EventType::Normal, reason, text.clone());
            self.message(text);
        }
        let w = self.obs.workload.as_ref();
        self.finalise(ctx, w, purpose, persisted)
    }

    /// Run the finishing sequence for `purpose`: the first step whose work is
    /// not yet visible in the observed state acts (or waits); steps already
    /// done are passed. `persisted` is the step recorded in status (`None`
    /// when the sequence starts in this call), for the grace period.
    fn finalise(
        &mut self,
        ctx: &Ctx<'a>,
        w: Option<&Deployment>,
        purpose: Purpose,
        persisted: Option<FinalisingStep>,
    ) -> Result<(), PlanError> {
        for &step in purpose.order() {
            match self.finalising_work(ctx, w, purpose, step)? {
                Work::Done => {
                    if persisted == Some(step) && moves_traffic(step) {
                        let since = self.cs_ref().last_update_time;
                        if let Some(left) = remaining(self.now, since.as_ref(), ctx.grace) {
                            self.cs().finalising_step = Some(step);
                            self.requeue_in(left);
                            return Ok(());
                        }
                    }
                }
                Work::Act(actions) => {
                    self.actions.extend(actions);
                    let now = to_k8s_time(self.now);
                    let cs = self.cs();
                    if persisted != Some(step) || moves_traffic(step) {
                        cs.last_update_time = Some(now);
                    }
                    cs.finalising_step = Some(step);
                    if moves_traffic(step) {
                        self.requeue_in(ctx.grace);
                    }
                    let text = format!("{}: {}", purpose.verb(), describe(step));
                    self.message(text);
                    return Ok(());
                }
                Work::Wait(text) => {
                    let now = to_k8s_time(self.now);
                    let cs = self.cs();
                    if persisted != Some(step) {
                        cs.last_update_time = Some(now);
                    }
                    cs.finalising_step = Some(step);
                    self.message(format!("{}: {text}", purpose.verb()));
                    return Ok(());
                }
            }
        }
        self.finalised(ctx, w, purpose);
        Ok(())
    }

    fn finalising_work(
        &mut self,
        ctx: &Ctx<'a>,
        w: Option<&Deployment>,
        purpose: Purpose,
        step: FinalisingStep,
    ) -> Result<Work, PlanError> {
        let before = self.actions.len();
        match step {
            FinalisingStep::RestoreRouting => {
                self.ensure_routing(ctx, None, true)?;
            }
            FinalisingStep::RestoreStableService => {
                // With subset routing the stable subsets were narrowed instead
                // (and the VirtualServices no longer use the canary subset).
                self.ensure_destination_rules(ctx, true)?;
                if let Some(svc) = self.obs.stable_service.as_ref()
                    && objects::stable_isolation(svc).is_some()
                {
                    self.actions.push(Action::PatchService {
                        name: Self::stable_service_name(ctx),
                        patch: objects::unisolate_patch(),
                    });
                }
            }
            FinalisingStep::DeleteCanaryService => {
                if let Some(c) = self.obs.canary_service.as_ref()
                    && is_ours(&c.metadata, self.ro)
                {
                    if c.metadata.deletion_timestamp.is_some() {
                        return Ok(Work::Wait(format!(
                            "waiting for Service {} to be deleted",
                            c.metadata.name.as_deref().unwrap_or_default()
                        )));
                    }
                    self.actions.push(Action::DeleteService {
                        name: canary_service_name(&Self::stable_service_name(ctx)),
                    });
                }
            }
            FinalisingStep::DeleteCanaryWorkload => {
                if let Some(c) = self.obs.canary_workload.as_ref()
                    && is_ours(&c.metadata, self.ro)
                {
                    if c.metadata.deletion_timestamp.is_some() {
                        return Ok(Work::Wait(format!(
                            "waiting for Deployment {} to be deleted",
                            self.canary_name()
                        )));
                    }
                    self.actions.push(Action::DeleteDeployment {
                        name: self.canary_name(),
                    });
                }
            }
            FinalisingStep::ResumeWorkload => {
                let Some(w) = w else {
                    return Ok(Work::Done);
                };
                let name = self.workload_name();
                match purpose {
                    Purpose::Terminate | Purpose::Disable => {
                        let stable = self.cs_ref().stable_revision;
                        let pending = !stable.is_empty() && Self::current_revision(w) != stable;
                        let ours = objects::has_annotation(&w.metadata, PAUSED_BY_RAMP_ANNOTATION);
                        if objects::is_paused(w) && (ours || pending) {
                            self.actions.push(Action::PatchDeployment {
                                name,
                                patch: objects::resume_patch(true),
                            });
                        } else if objects::label(&w.metadata, CONTROLLED_BY_LABEL).is_some() || ours
                        {
                            let mut patch = objects::release_patch();
                            if ours {
                                patch["metadata"]["annotations"] =
                                    serde_json::json!({PAUSED_BY_RAMP_ANNOTATION: null});
                            }
                            self.actions.push(Action::PatchDeployment { name, patch });
                        }
                    }
                    _ => {
                        if objects::is_paused(w) {
                            self.actions.push(Action::PatchDeployment {
                                name,
                                patch: objects::resume_patch(false),
                            });
                        } else if !objects::rolled_out(w) {
                            let status = w.status.clone().unwrap_or_default();
                            return Ok(Work::Wait(format!(
                                "waiting for Deployment {name} to roll out revision {}: {}/{} pods updated, {} available",
                                Self::current_revision(w),
                                status.updated_replicas.unwrap_or(0),
                                objects::spec_replicas(w),
                                status.available_replicas.unwrap_or(0)
                            )));
                        }
                    }
                }
            }
            FinalisingStep::Done => {}
        }
        if self.actions.len() > before {
            let acts = self.actions.split_off(before);
            Ok(Work::Act(acts))
        } else {
            Ok(Work::Done)
        }
    }

    fn finalised(&mut self, ctx: &Ctx<'a>, w: Option<&Deployment>, purpose: Purpose) {
        let workload = self.workload_name();
        let now = to_k8s_time(self.now);
        {
            let cs = self.cs();
            cs.finalising_step = Some(FinalisingStep::Done);
            cs.last_update_time = Some(now);
        }
        let cs = self.cs_ref();
        match purpose {
            Purpose::Promote => {
                self.status.phase = Some(RolloutPhase::Healthy);
                {
                    let cs = self.cs();
                    cs.stable_revision = cs.canary_revision.clone();
                    cs.current_step_state = StepState::Completed;
                    cs.canary_replicas = 0;
                    cs.canary_ready_replicas = 0;
                }
                let text = format!(
                    "rollout complete: Deployment {workload} runs revision {} everywhere",
                    cs.canary_revision
                );
                self.condition(CONDITION_PROGRESSING, "False", "Completed", &text);
                self.condition(CONDITION_SUCCEEDED, "True", "Completed", &text);
                self.event(EventType::Normal, "Succeeded", text.clone());
                self.message(text);
            }
            Purpose::Rollback => {
                self.status.phase = Some(RolloutPhase::Healthy);
                {
                    let cs = self.cs();
                    cs.canary_revision = cs.stable_revision.clone();
                    cs.current_step_state = StepState::Completed;
                    cs.canary_replicas = 0;
                    cs.canary_ready_replicas = 0;
                }
                let text = format!(
                    "rolled back: Deployment {workload} runs the stable revision {}, the canary is gone",
                    cs.stable_revision
                );
                self.condition(CONDITION_PROGRESSING, "False", "RolledBack", &text);
                self.condition(CONDITION_SUCCEEDED, "False", "RolledBack", &text);
                self.event(EventType::Normal, "RolledBack", text.clone());
                self.message(text);
            }
            Purpose::Restart => {
                let current = w.map(Self::current_revision).unwrap_or_default();
                self.status.phase = Some(RolloutPhase::Progressing);
                {
                    let cs = self.cs();
                    cs.canary_revision = current.clone();
                    cs.pod_template_hash = String::new();
                    cs.current_step_index = 1;
                    cs.finalising_step = None;
                }
                self.transition(StepState::BeforeStepUpgrade);
                let text = format!(
                    "routing restored; starting again at step 1 of {} with revision {current}",
                    ctx.n()
                );
                self.condition(CONDITION_PROGRESSING, "True", "InRolling", &text);
                self.event(EventType::Normal, "Restarted", text.clone());
                self.message(text);
            }
            Purpose::Abort => {
                self.cs().finalising_step = None;
                if let Some(w) = w {
                    self.aborted_settled(w);
                }
            }
            Purpose::Terminate => {
                self.cleanup_complete = true;
                self.message(format!(
                    "cleanup complete: routing and Services restored, canary removed, Deployment {workload} released"
                ));
            }
            Purpose::Disable => {
                self.status.phase = Some(RolloutPhase::Disabled);
                let text = format!(
                    "disabled: routing and Services restored, canary removed, Deployment {workload} released"
                );
                self.condition(CONDITION_PROGRESSING, "False", "Disabled", &text);
                self.event(EventType::Normal, "Disabled", text.clone());
                self.message(text);
                let cs = self.cs();
                cs.stable_revision = String::new();
            }
        }
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
