//! Execute: the plan's writes (each awaited until its watch delivers it),
//! the status, the finalizer and the Events.

use super::*;

/// The resourceVersion of `kind/name` in the watch cache holding it.
pub(super) fn cached_version(ctx: &Context, ns: &str, kind: &str, name: &str) -> Option<String> {
    match kind {
        "Deployment" => ctx
            .deployments
            .version(ns, name)
            .or_else(|| ctx.canary_deployments.version(ns, name)),
        "Service" => ctx.services.version(ns, name),
        kind => ctx.routing.get(kind)?.version(ns, name),
    }
}

/// Whether a watch cache will show `kind` objects with this metadata: the
/// Deployment caches hold only labelled Deployments, routing kinds are cached
/// only when their CRD is installed.
pub(super) fn cached_kind(ctx: &Context, kind: &str, meta: &kube::core::ObjectMeta) -> bool {
    match kind {
        "Deployment" => meta.labels.as_ref().is_some_and(|l| {
            l.contains_key(CONTROLLED_BY_LABEL) || l.contains_key(MANAGED_BY_ROLLOUT_LABEL)
        }),
        "Service" => true,
        kind => ctx.routing.contains_key(kind),
    }
}

/// Execute one planned write for the Rollout `ns/rollout`, and remember it
/// until the watch delivers it (see [`OwnWrites`]).
pub(super) async fn execute(
    action: &Action,
    ns: &str,
    rollout: &str,
    ctx: &Context,
) -> Result<(), Error> {
    let client = ctx.client.clone();
    let fail = |source: kube::Error| {
        if is_conflict(&source) {
            Error::Conflict {
                what: action.to_string(),
            }
        } else {
            Error::Apply {
                action: action.to_string(),
                source,
            }
        }
    };
    let (kind, name) = action.target();
    let before = cached_version(ctx, ns, kind, name);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    tracing::info!(namespace = ns, action = %action, "applying");
    // The written object's metadata; `None`: gone (or already absent).
    let written: Option<kube::core::ObjectMeta> = match action {
        Action::ApplyDeployment(d) => {
            let api: Api<Deployment> = Api::namespaced(client, ns);
            let o = api
                .patch(&d.name_any(), &apply, &Patch::Apply(d.as_ref()))
                .await
                .map_err(fail)?;
            Some(o.metadata)
        }
        Action::PatchDeployment { name, patch } => {
            let api: Api<Deployment> = Api::namespaced(client, ns);
            let o = api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(fail)?;
            Some(o.metadata)
        }
        Action::DeleteDeployment { name } => {
            let api: Api<Deployment> = Api::namespaced(client, ns);
            match api.delete(name, &DeleteParams::background()).await {
                // Gone or going: either way the cache changes.
                Ok(_) => None,
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(fail(e)),
            }
        }
        Action::ApplyService(s) => {
            let api: Api<Service> = Api::namespaced(client, ns);
            let o = api
                .patch(&s.name_any(), &apply, &Patch::Apply(s.as_ref()))
                .await
                .map_err(fail)?;
            Some(o.metadata)
        }
        Action::PatchService { name, patch } => {
            let api: Api<Service> = Api::namespaced(client, ns);
            let o = api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(fail)?;
            Some(o.metadata)
        }
        Action::DeleteService { name } => {
            let api: Api<Service> = Api::namespaced(client, ns);
            match api.delete(name, &DeleteParams::background()).await {
                // Gone or going: either way the cache changes.
                Ok(_) => None,
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(fail(e)),
            }
        }
        Action::PatchRouting {
            api_version,
            kind,
            name,
            patch,
        } => {
            let Some(ar) = routing_resource(ctx, api_version, kind).await else {
                return Err(Error::Fetch {
                    what: format!("{kind} {ns}/{name}"),
                    source: kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(
                        format!("{api_version} {kind} is not served"),
                    )),
                });
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
            let o = api
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::<Value>::Json(patch.clone()),
                )
                .await
                .map_err(fail)?;
            Some(o.metadata)
        }
    };
    let after = written.as_ref().and_then(|m| m.resource_version.clone());
    let visible = match &written {
        Some(m) => cached_kind(ctx, kind, m),
        // Deleted: the cache drops it if it held it.
        None => before.is_some(),
    };
    if visible && (before.is_some() || after.is_some()) {
        ctx.own_writes
            .record(ns, rollout, kind, name, before.as_deref(), after.as_deref());
    }
    Ok(())
}

/// Replace the status with a resourceVersion precondition: if anything
/// (an approval) changed the Rollout since we read it, the write fails with
/// 409 and the next reconcile plans from the new state.
pub(super) async fn write_status(
    api: &Api<Rollout>,
    ro: &Rollout,
    status: &RolloutStatus,
    ctx: &Context,
) -> Result<(), Error> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let cs = status.canary_status.as_ref();
        tracing::debug!(
            rollout = %format!("{}/{}", ro.namespace().unwrap_or_default(), ro.name_any()),
            phase = ?status.phase,
            step = ?cs.map(|c| (c.current_step_index, &c.current_step_state, &c.finalising_step)),
            ready = ?cs.map(|c| (c.canary_replicas, c.canary_ready_replicas)),
            message = ?status.message,
            "writing status"
        );
    }
    let mut next = ro.clone();
    next.status = Some(status.clone());
    next.metadata.managed_fields = None;
    match api
        .replace_status(&ro.name_any(), &PostParams::default(), &next)
        .await
    {
        Ok(written) => {
            ctx.own_writes.record(
                &ro.namespace().unwrap_or_default(),
                &ro.name_any(),
                writes::ROLLOUT,
                &ro.name_any(),
                ro.resource_version().as_deref(),
                written.resource_version().as_deref(),
            );
            Ok(())
        }
        Err(e) if is_conflict(&e) => Err(Error::Conflict {
            what: format!("Rollout {}", ro.name_any()),
        }),
        Err(source) => Err(Error::Write {
            name: ro.name_any(),
            source,
        }),
    }
}

/// The JSON patch adding (or removing) ramp's finalizer, led by a `test` of
/// the resourceVersion read, so a concurrent change of the list is never
/// overwritten.
pub(super) fn finalizer_patch(ro: &Rollout, add: bool) -> json_patch::Patch {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
    let rv = ro.resource_version().unwrap_or_default();
    let mut ops = vec![PatchOperation::Test(TestOperation {
        path: PointerBuf::from_tokens(["metadata", "resourceVersion"]),
        value: Value::String(rv),
    })];
    let finalizers = ro.finalizers();
    if add {
        ops.push(PatchOperation::Add(if finalizers.is_empty() {
            AddOperation {
                path: PointerBuf::from_tokens(["metadata", "finalizers"]),
                value: json!([FINALIZER]),
            }
        } else {
            AddOperation {
                path: PointerBuf::from_tokens(["metadata", "finalizers", "-"]),
                value: json!(FINALIZER),
            }
        }));
    } else if let Some(i) = finalizers.iter().position(|f| f == FINALIZER) {
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: PointerBuf::from_tokens([
                "metadata".to_string(),
                "finalizers".into(),
                i.to_string(),
            ]),
        }));
    }
    json_patch::Patch(ops)
}

pub(super) async fn add_finalizer(api: &Api<Rollout>, ro: &Rollout) -> Result<(), Error> {
    patch_finalizers(api, ro, true).await
}

pub(super) async fn remove_finalizer(api: &Api<Rollout>, ro: &Rollout) -> Result<(), Error> {
    patch_finalizers(api, ro, false).await
}

pub(super) async fn patch_finalizers(
    api: &Api<Rollout>,
    ro: &Rollout,
    add: bool,
) -> Result<(), Error> {
    let patch = finalizer_patch(ro, add);
    match api
        .patch(
            &ro.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) && !add => Ok(()),
        Err(e) if is_conflict(&e) => Err(Error::Conflict {
            what: format!("Rollout {}", ro.name_any()),
        }),
        Err(source) => Err(Error::Write {
            name: ro.name_any(),
            source,
        }),
    }
}

pub(super) async fn publish_events(ro: &Rollout, plan: &Plan, ctx: &Context) {
    if plan.events.is_empty() {
        return;
    }
    let reference = ro.object_ref(&());
    for ev in &plan.events {
        let warning = ev.type_ == ramp_core::EventType::Warning;
        if let Err(e) = ctx
            .recorder
            .publish(&reference, warning, &ev.reason, &ev.message)
            .await
        {
            tracing::warn!(error = %e, reason = %ev.reason, "could not record an event");
        }
    }
}
