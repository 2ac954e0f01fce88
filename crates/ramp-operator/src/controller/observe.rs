//! Observe: everything the planner needs, from the watch caches (a direct
//! read only for a Deployment not adopted yet, or a routing kind without a
//! cache).

use super::*;

/// Read everything the planner needs. Deployments, Services and
/// VirtualServices come from the watch caches; ReplicaSets and canary pods are
/// listed only when needed.
pub(super) async fn observe(ro: &Rollout, ctx: &Context) -> Result<Observed, Error> {
    let ns = ro.namespace().unwrap_or_default();
    let now = chrono::Utc::now();
    let mut obs = Observed::new(ro.clone(), now);
    let client = &ctx.client;

    let workload_name = &ro.spec.workload_ref.name;
    let cached = ctx.deployments.get(&ns, workload_name);
    obs.workload = match cached {
        Some(d) => Some(d),
        None => {
            // Not adopted yet (no label): read it directly.
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            api.get_opt(workload_name)
                .await
                .map_err(|source| Error::Fetch {
                    what: format!("Deployment {ns}/{workload_name}"),
                    source,
                })?
        }
    };
    obs.canary_workload = ctx
        .canary_deployments
        .get(&ns, &canary_workload_name(workload_name));

    // ReplicaSets of the workload and of its canary, from the cache.
    for d in [&obs.workload, &obs.canary_workload].into_iter().flatten() {
        for (ns, name) in ctx.replica_set_owners.get(&owner_key(&ns, &d.name_any())) {
            if let Some(rs) = ctx.replica_sets.get(&ns, &name) {
                obs.replica_sets.push(rs);
            }
        }
    }

    if let Some(c) = &obs.canary_workload {
        let status = c.status.clone().unwrap_or_default();
        let want = c.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        if status.ready_replicas.unwrap_or(0) < want {
            let labels = c
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            for (pns, pname) in ctx
                .canary_pod_index
                .get(&canary_pod_key(&ns, &ro.name_any()))
            {
                let Some(p) = ctx.canary_pods.get(&pns, &pname) else {
                    continue;
                };
                let own = p.labels();
                if labels.iter().all(|(k, v)| own.get(k) == Some(v)) {
                    obs.canary_pods.push(p);
                }
            }
        }
    }

    if let Some(t) = routing_of(ro) {
        obs.stable_service = ctx.services.get(&ns, &t.service);
        obs.canary_service = ctx.services.get(&ns, &canary_service_name(&t.service));
        for r in &t.routing_refs() {
            // As JSON, which the planner reads: the cache's straight, no
            // decoding to a DynamicObject and encoding back.
            let obj: Option<Value> = match ctx.routing.get(r.kind.as_str()) {
                Some(cache) => cache.get_as(&ns, &r.name),
                None => {
                    // Kinds without a watch cache are read directly (a CRD
                    // not served: the object is missing).
                    let Some(ar) = routing_resource(ctx, &r.api_version, &r.kind).await else {
                        continue;
                    };
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                    match api.get_opt(&r.name).await {
                        Ok(o) => {
                            o.map(|o| serde_json::to_value(&o))
                                .transpose()
                                .map_err(|source| Error::Encode {
                                    what: format!("{} {}", r.kind, r.name),
                                    source,
                                })?
                        }
                        // CRD not installed: the object is missing.
                        Err(e) if is_not_found(&e) => None,
                        Err(source) => {
                            return Err(Error::Fetch {
                                what: format!("{} {ns}/{}", r.kind, r.name),
                                source,
                            });
                        }
                    }
                }
            };
            if let Some(mut v) = obj {
                name_kind(&mut v, &r.api_version, &r.kind);
                obs.routing_objects.push(v);
            }
        }
        // The VirtualServices of the namespace that claim a host of the
        // Rollout's VirtualServices or its stable Service: the ones that can
        // conflict (the planner compares hosts and gateways exactly).
        if let Some(vs) = ctx.routing.get("VirtualService") {
            let mut hosts = vec![ramp_core::routing::normalize_host(&t.service, &ns)];
            for r in t
                .routing_refs()
                .iter()
                .filter(|r| r.kind == "VirtualService")
            {
                hosts.extend(
                    ctx.virtual_service_hosts
                        .keys_of(&ns, &r.name)
                        .into_iter()
                        .filter_map(|k| k.rsplit_once('/').map(|(_, h)| h.to_string())),
                );
            }
            let mut names = BTreeSet::new();
            for h in hosts {
                names.extend(
                    ctx.virtual_service_hosts
                        .get(&index::host_key(&ns, &h))
                        .into_iter()
                        .map(|(_, n)| n),
                );
            }
            for name in names {
                let Some(mut v) = vs.get_as::<Value>(&ns, &name) else {
                    continue;
                };
                name_kind(&mut v, "networking.istio.io/v1", "VirtualService");
                obs.namespace_virtual_services.push(v);
            }
        }
    }
    Ok(obs)
}

/// Set `apiVersion` and `kind` of a routing object's JSON (watch events carry
/// no TypeMeta on some servers).
pub(super) fn name_kind(v: &mut Value, api_version: &str, kind: &str) {
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version.to_string()));
        m.insert("kind".into(), Value::String(kind.to_string()));
    }
}
