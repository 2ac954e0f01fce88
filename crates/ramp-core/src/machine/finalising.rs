//! Finalising: after the last step, an abort's restore, a disable or a
//! deletion, the finalising steps run in order, one per plan, each waiting
//! until the watches show its effect.

use super::*;

impl<'a> Planner<'a> {
    // ----- finalising ---------------------------------------------------------------

    pub(super) fn begin_finalising(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        purpose: Purpose,
    ) -> Result<(), PlanError> {
        let cs = self.cs_copy();
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
        self.condition(PROGRESSING, Status::True, reason, &text);
        self.event(EventType::Normal, reason, text.clone());
        self.message(text);
        self.finalise(ctx, Some(w), purpose, None)
    }

    /// Continue a finalising sequence under way in phase Progressing.
    pub(super) fn resume_finalising(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
    ) -> Result<(), PlanError> {
        let cs = self.cs_copy();
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

    pub(super) fn cleanup(&mut self, ctx: &Ctx<'a>, purpose: Purpose) -> Result<(), PlanError> {
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
            self.cs_copy().finalising_step
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
            self.condition(PROGRESSING, Status::False, reason, &text);
            self.event(EventType::Normal, reason, text.clone());
            self.message(text);
        }
        let w = self.obs.workload.as_ref();
        self.finalise(ctx, w, purpose, persisted)
    }

    /// Run the finalising sequence for `purpose`: the first step whose work is
    /// not yet visible in the observed state acts (or waits); steps already
    /// done are passed. `persisted` is the step recorded in status (`None`
    /// when the sequence starts in this call), for the grace period.
    pub(super) fn finalise(
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
                        let since = self.cs_copy().last_update_time;
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

    pub(super) fn finalising_work(
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
                        let stable = self.cs_copy().stable_revision;
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

    pub(super) fn finalised(&mut self, ctx: &Ctx<'a>, w: Option<&Deployment>, purpose: Purpose) {
        let workload = self.workload_name();
        let now = to_k8s_time(self.now);
        {
            let cs = self.cs();
            cs.finalising_step = Some(FinalisingStep::Done);
            cs.last_update_time = Some(now);
        }
        let cs = self.cs_copy();
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
                self.condition(PROGRESSING, Status::False, reason::COMPLETED, &text);
                self.condition(SUCCEEDED, Status::True, reason::COMPLETED, &text);
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
                self.condition(PROGRESSING, Status::False, reason::ROLLED_BACK, &text);
                self.condition(SUCCEEDED, Status::False, reason::ROLLED_BACK, &text);
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
                self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
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
                self.condition(PROGRESSING, Status::False, reason::DISABLED, &text);
                self.event(EventType::Normal, "Disabled", text.clone());
                self.message(text);
                let cs = self.cs();
                cs.stable_revision = String::new();
            }
        }
    }
}
