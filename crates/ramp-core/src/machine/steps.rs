//! Walking the steps: before the step's upgrade, the canary's pods, the
//! step's traffic, its pause (approval, timer, analysis) and its end.

use super::*;

impl<'a> Planner<'a> {
    // ----- steps -----------------------------------------------------------------

    /// The revision situation of a rollout under way, or `None` when the
    /// workload still has the canary revision.
    pub(super) fn revision_change(&self, w: &Deployment) -> Option<Purpose> {
        let cs = self.cs_copy();
        let current = Self::current_revision(w);
        if current == cs.stable_revision {
            Some(Purpose::Rollback)
        } else if current != cs.canary_revision {
            Some(Purpose::Restart)
        } else {
            None
        }
    }

    pub(super) fn hold_if_paused(&mut self) -> bool {
        if !self.ro.spec.strategy.paused {
            return false;
        }
        let cs = self.cs_copy();
        let text = format!(
            "paused by spec.strategy.paused at step {} ({}); set it to false to continue",
            cs.current_step_index, cs.current_step_state
        );
        self.condition(PROGRESSING, Status::True, reason::PAUSED, &text);
        if self.old.message.as_deref() != Some(text.as_str()) {
            self.event(EventType::Normal, "Paused", text.clone());
        }
        self.message(text);
        true
    }

    pub(super) fn steps(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let cs = self.cs_copy();
        if cs.requested_action == Some(RolloutAction::Abort) {
            return self.abort(ctx, w);
        }
        if self.hold_if_paused() {
            self.keep_paused(w);
            return Ok(());
        }
        if let Some(purpose) = self.revision_change(w) {
            return self.begin_finalising(ctx, w, purpose);
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
                return self.begin_finalising(ctx, w, Purpose::Promote);
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
            StepState::Completed => self.begin_finalising(ctx, w, Purpose::Promote),
        }
    }

    pub(super) fn desired_canary(
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
    pub(super) fn ensure_canary_workload(
        &mut self,
        desired: &Deployment,
    ) -> Result<bool, PlanError> {
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

    pub(super) fn stable_service_name(ctx: &Ctx<'_>) -> String {
        ctx.routing_ref
            .map(|r| r.service.clone())
            .unwrap_or_default()
    }

    /// `pod-template-hash` of the pods running the stable revision.
    pub(super) fn stable_pod_hash(&self, w: &Deployment) -> Result<String, PlanError> {
        let revision = self.cs_copy().stable_revision;
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
    pub(super) fn ensure_isolation(
        &mut self,
        ctx: &Ctx<'_>,
        w: &Deployment,
    ) -> Result<bool, PlanError> {
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
    pub(super) fn canary_pod_hash(&self) -> Option<String> {
        let canary = self.obs.canary_workload.as_ref()?;
        let revision = template_revision(&objects::template_of(canary));
        objects::find_rs(&self.obs.replica_sets, canary, &revision)
            .and_then(objects::pod_hash_label)
    }

    /// Make the canary reachable: the canary Service, or with subset routing
    /// the DestinationRule's canary subset (the canary pods' hash is in the
    /// status by now). Returns whether anything changed.
    pub(super) fn ensure_canary_service(
        &mut self,
        ctx: &Ctx<'_>,
        hash: &str,
    ) -> Result<bool, PlanError> {
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
    pub(super) fn ensure_routing(
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
    pub(super) fn ensure_destination_rules(
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
    pub(super) fn ensure_object(
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
                    Some(_) => format!("step {}", self.cs_copy().current_step_index),
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
    pub(super) fn check_conflicts(
        &self,
        ctx: &Ctx<'_>,
        rctx: &RoutingContext,
    ) -> Result<(), PlanError> {
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
    pub(super) fn preflight(&self, ctx: &Ctx<'_>, w: &Deployment) -> Result<(), PlanError> {
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
    pub(super) fn check_references(&self, ctx: &Ctx<'_>) -> Result<(), PlanError> {
        let service = Self::stable_service_name(ctx);
        if self.obs.stable_service.is_none() {
            return Err(self.not_found("Service", &service));
        }
        self.check_routing(ctx)
    }

    /// Every routing object exists, is of a supported kind, routes to the
    /// stable Service, and takes every step's routing.
    pub(super) fn check_routing(&self, ctx: &Ctx<'_>) -> Result<(), PlanError> {
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

    pub(super) fn step_text(ctx: &Ctx<'_>, i: i32) -> String {
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

    pub(super) fn before_step_upgrade(
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
        self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepUpgrade", text);
        Ok(())
    }

    pub(super) fn step_upgrade(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        i: i32,
    ) -> Result<(), PlanError> {
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
            self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
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
        self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepTrafficRouting", text);
        Ok(())
    }

    /// Keep the step's world as it should be (drift, deleted objects).
    /// Returns whether routing or a Service changed.
    pub(super) fn ensure_step(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        i: i32,
    ) -> Result<bool, PlanError> {
        let desired = self.desired_canary(ctx, w, i)?;
        let mut changed = self.ensure_isolation(ctx, w)?;
        self.ensure_canary_workload(&desired)?;
        if let Some(c) = self.obs.canary_workload.as_ref() {
            self.cs().canary_ready_replicas = objects::ready_replicas(c);
        }
        let hash = match self.canary_pod_hash() {
            Some(h) => h,
            None => self.cs_copy().pod_template_hash,
        };
        if !hash.is_empty() {
            self.cs().pod_template_hash = hash.clone();
            changed |= self.ensure_canary_service(ctx, &hash)?;
        }
        changed |= self.ensure_routing(ctx, ctx.routing_at(i), false)?;
        Ok(changed)
    }

    pub(super) fn step_traffic_routing(
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
        let since = self.cs_copy().last_update_time;
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
            if let Some(j) = analysis::judge_step(self.obs, &self.cs_copy()) {
                self.cs().analysis = j.records;
            }
        }
        self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepPaused", text);
        Ok(())
    }

    /// What a paused step waits for, in words.
    pub(super) fn paused_text(&self, ctx: &Ctx<'_>, i: i32) -> String {
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

    pub(super) fn step_paused(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        i: i32,
    ) -> Result<(), PlanError> {
        let judgement = analysis::judge_step(self.obs, &self.cs_copy());
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
        let since = self.cs_copy().last_update_time;
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
            self.condition(PROGRESSING, Status::True, reason, &text);
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
    pub(super) fn record_analysis(&mut self, i: i32, j: &analysis::Judgement) {
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
    pub(super) fn analysis_message(&mut self, ctx: &Ctx<'_>, i: i32, j: &analysis::Judgement) {
        let text = format!("{}; analysis: {}", self.paused_text(ctx, i), j.summary);
        let reason = match &j.hold {
            Some((r, _)) if *r != "AnalysisPending" => r,
            _ => "InRolling",
        };
        self.condition(PROGRESSING, Status::True, reason, &text);
        self.message(text);
    }

    pub(super) fn step_ready(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        i: i32,
    ) -> Result<(), PlanError> {
        if i >= ctx.n() {
            return self.begin_finalising(ctx, w, Purpose::Promote);
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
        self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
        self.message(text.clone());
        self.event(EventType::Normal, "StepUpgrade", text);
        Ok(())
    }
}
