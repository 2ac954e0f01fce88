//! The user's actions: abort (routing restored first, the canary scaled
//! to zero) and the Aborted state.

use super::*;

impl<'a> Planner<'a> {
    // ----- user actions ------------------------------------------------------------

    pub(super) fn abort(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let i = self.cs_copy().current_step_index;
        self.abort_with(ctx, w, "Aborted", &format!("aborted at step {i}"))
    }

    /// Abort as `kubectl ramp abort` does, with `reason` and `why` (the
    /// start of the message) in the conditions, the Warning event and the message.
    pub(super) fn abort_with(
        &mut self,
        ctx: &Ctx<'a>,
        w: &Deployment,
        reason: &str,
        why: &str,
    ) -> Result<(), PlanError> {
        let cs = self.cs_copy();
        self.status.phase = Some(RolloutPhase::Aborted);
        self.cs().requested_action = None;
        let text = format!(
            "{why}: traffic goes back to revision {}, the canary is scaled to 0 and Deployment {} stays paused; retry, or change the template back",
            cs.stable_revision,
            self.workload_name()
        );
        self.condition(PROGRESSING, Status::False, reason, &text);
        self.condition(SUCCEEDED, Status::False, reason, &text);
        self.event(EventType::Warning, reason, text.clone());
        self.message(text);
        self.keep_paused(w);
        self.finalise(ctx, Some(w), Purpose::Abort, None)
    }

    pub(super) fn aborted(&mut self, ctx: &Ctx<'a>, w: &Deployment) -> Result<(), PlanError> {
        let cs = self.cs_copy();
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
            return self.begin_finalising(ctx, w, purpose);
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
                self.condition(PROGRESSING, Status::True, reason::IN_ROLLING, &text);
                self.condition(SUCCEEDED, Status::Unknown, reason::IN_ROLLING, &text);
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
                self.condition(
                    SUCCEEDED,
                    Status::Unknown,
                    reason::IN_ROLLING,
                    "promote-full",
                );
                return self.begin_finalising(ctx, w, Purpose::Promote);
            }
            _ => {}
        }
        self.aborted_settled(w);
        Ok(())
    }

    /// After an abort: canary at 0 replicas, workload paused.
    pub(super) fn aborted_settled(&mut self, w: &Deployment) {
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
        let cs = self.cs_copy();
        let why = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == SUCCEEDED && c.reason.as_deref() == Some("AnalysisFailed"))
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
}
