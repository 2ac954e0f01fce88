use super::*;

#[test]
fn the_finalizer_patch_tests_the_version_then_adds_or_removes_it() {
    let ro = |finalizers: Value| -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "rollouts.ramp.dev/v1beta1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7", "finalizers": finalizers},
            "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "strategy": {}},
        }))
        .unwrap()
    };
    let test = json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"});
    assert_eq!(
        serde_json::to_value(finalizer_patch(&ro(json!([])), true)).unwrap(),
        json!([test, {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
    );
    assert_eq!(
        serde_json::to_value(finalizer_patch(&ro(json!(["other"])), true)).unwrap(),
        json!([test, {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}])
    );
    assert_eq!(
        serde_json::to_value(finalizer_patch(&ro(json!(["other", FINALIZER])), false)).unwrap(),
        json!([test, {"op": "remove", "path": "/metadata/finalizers/1"}])
    );
}

fn deployment(name: &str, label: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns", "labels": {label: "rollouts-demo"}},
    }))
    .unwrap()
}

fn listing(d: Deployment) -> Vec<Result<watcher::Event<Deployment>, watcher::Error>> {
    vec![
        Ok(watcher::Event::Init),
        Ok(watcher::Event::InitApply(d)),
        Ok(watcher::Event::InitDone),
    ]
}

#[tokio::test]
async fn both_deployment_watches_keep_their_objects_when_their_lists_interleave() {
    // The two initial lists arrive interleaved (as after an operator
    // restart): Init, Init, InitApply, InitApply, InitDone, InitDone.
    let caches = deployment_caches(
        futures::stream::iter(listing(deployment("workload-demo", CONTROLLED_BY_LABEL))),
        futures::stream::iter(listing(deployment(
            "workload-demo-canary",
            MANAGED_BY_ROLLOUT_LABEL,
        ))),
    );
    let touched: Vec<String> = caches.events.map(|d| d.unwrap().name_any()).collect().await;
    assert_eq!(touched.len(), 2);
    assert!(caches.controlled.contains("ns", "workload-demo"));
    assert!(
        caches.canaries.contains("ns", "workload-demo-canary"),
        "the canary must stay in the cache after the stable Deployment's list"
    );
    for flag in &caches.synced {
        assert!(*flag.borrow());
    }
}

#[test]
fn a_canary_pod_wakes_the_rollout_named_by_its_label() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "workload-demo-canary-abc-x", "namespace": "ns",
                     "labels": {"app": "demo", MANAGED_BY_ROLLOUT_LABEL: "rollouts-demo"}},
    }))
    .unwrap();
    assert_eq!(
        rollout_of_canary_pod(&pod.metadata),
        Some(ObjectRef::new("rollouts-demo").within("ns"))
    );
    let other: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "demo"}},
    }))
    .unwrap();
    assert_eq!(rollout_of_canary_pod(&other.metadata), None);
}

#[tokio::test]
async fn synced_flag_turns_true_at_the_end_of_the_first_list_only() {
    let events = futures::stream::iter(listing(deployment("a", CONTROLLED_BY_LABEL)));
    let (events, flag) = flag_synced(events);
    let mut events = Box::pin(events);
    // Init, InitApply: not yet.
    events.next().await;
    events.next().await;
    assert!(!*flag.borrow());
    events.next().await;
    assert!(*flag.borrow());
}
