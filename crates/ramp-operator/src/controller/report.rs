//! The per-Rollout metrics a reconcile reports, and the phase counts.

use super::*;

pub(super) fn record_metrics(ro: &Rollout, plan: &Plan, ctx: &Context) {
    let labels = RolloutLabels {
        namespace: ro.namespace().unwrap_or_default(),
        name: ro.name_any(),
    };
    let old = ro.status.clone().unwrap_or_default();
    let new = &plan.status;
    let step = |s: &RolloutStatus| {
        s.canary_status
            .as_ref()
            .map(|c| (c.current_step_index, c.current_step_state))
    };
    if step(&old) != step(new) {
        ctx.metrics.step_transitions.get_or_create(&labels).inc();
        // Time spent paused, measured when leaving StepPaused.
        if let Some(c) = &old.canary_status
            && c.current_step_state == ramp_api::StepState::StepPaused
            && let Some(t) = &c.last_update_time
        {
            let since = ramp_core::time::from_k8s_time(t);
            if let Ok(d) = (chrono::Utc::now() - since).to_std() {
                ctx.metrics.add_paused(&labels, d);
            }
        }
    }
    ctx.metrics
        .current_step
        .get_or_create(&labels)
        .set(i64::from(step(new).map_or(0, |(i, _)| i)));
    ctx.metrics
        .canary_weight
        .get_or_create(&labels)
        .set(i64::from(canary_weight(ro, new)));
}

/// Share of traffic the canary receives in `status` (0 when none): the
/// routing in force, as the planner applies it (see [`ramp_api::ValidSpec::weight_now`]).
pub fn canary_weight(ro: &Rollout, status: &RolloutStatus) -> i32 {
    ramp_api::validate(ro).map_or(0, |spec| spec.weight_now(status))
}

/// Count Rollouts per phase every few seconds (cheap: a map of phases).
pub async fn count_phases(phases: Arc<Phases>, metrics: Metrics) {
    use ramp_api::RolloutPhase::*;
    loop {
        let mut counts: BTreeMap<PhaseLabel, i64> = BTreeMap::new();
        for p in [
            Initial,
            Healthy,
            Progressing,
            Aborted,
            Terminating,
            Disabling,
            Disabled,
        ] {
            counts.insert(p.into(), 0);
        }
        for (phase, n) in phases.counts() {
            *counts.entry(phase).or_default() += n;
        }
        for (phase, n) in counts {
            metrics
                .rollouts_by_phase
                .get_or_create(&PhaseLabels { phase })
                .set(n);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
