//! Deployments, ReplicaSets, pods and Endpoints behave as in a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod controllers_support;

use std::collections::BTreeSet;
use std::time::Duration;

use controllers_support::*;
use pretty_assertions::assert_eq;
use ramp_sim::controllers::{ControllerConfig, Controllers, pod_template_hash};
use ramp_sim::store::DeleteOptions;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_deployment_gets_a_hashed_replica_set_and_ready_pods() {
    let (store, _c) = start();
    let d = create(&store, &deployments(), deployment("web", 3, "nginx:1.25"));
    let hash = pod_template_hash(&d["spec"]["template"]);
    let d = wait_complete(&store, "web", T).await;

    let rs = get(&store, &replicasets(), &format!("web-{hash}")).expect("ReplicaSet web-<hash>");
    assert_eq!(label(&rs, "pod-template-hash"), hash);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        json!(hash)
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(rs["status"]["readyReplicas"], 3);

    let pods = list(&store, &pods(), "app=web");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let n = name(p);
        let suffix = n
            .strip_prefix(&format!("web-{hash}-"))
            .unwrap_or_else(|| panic!("pod name {n}"));
        assert_eq!(suffix.len(), 5, "{n}");
        assert_eq!(label(p, "pod-template-hash"), hash);
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"],
            json!(format!("web-{hash}"))
        );
        assert!(ready(p), "{p}");
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        assert!(
            p["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.244."))
        );
    }

    let s = &d["status"];
    assert_eq!(s["replicas"], 3);
    assert_eq!(s["updatedReplicas"], 3);
    assert_eq!(s["readyReplicas"], 3);
    assert_eq!(s["availableReplicas"], 3);
    assert_eq!(s["unavailableReplicas"], 0);
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(condition(&d, "Available").unwrap()["status"], "True");
    let progressing = condition(&d, "Progressing").unwrap();
    assert_eq!(progressing["status"], "True");
    assert_eq!(
        progressing["message"],
        json!(format!(
            "ReplicaSet \"web-{hash}\" has successfully progressed."
        ))
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
}

#[tokio::test]
async fn a_new_image_rolls_out_within_max_surge_and_max_unavailable() {
    let (store, _c) = start();
    let mut d = deployment("web", 4, "nginx:1.25");
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    create(&store, &deployments(), d);
    let before = wait_complete(&store, "web", T).await;
    let old_hash = pod_template_hash(&before["spec"]["template"]);

    // Watch the pods while rolling: never more than 4 + 1, never fewer than 4 - 1 ready.
    let watcher_store = store.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop2 = stop.clone();
    let sampler = tokio::spawn(async move {
        let (mut max_pods, mut min_ready) = (0usize, usize::MAX);
        while !stop2.is_cancelled() {
            let pods = list(&watcher_store, &pods(), "app=web");
            max_pods = max_pods.max(pods.len());
            min_ready = min_ready.min(pods.iter().filter(|p| ready(p)).count());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (max_pods, min_ready)
    });

    let patched = patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}}),
    );
    let new_hash = pod_template_hash(&patched["spec"]["template"]);
    assert_ne!(old_hash, new_hash);
    let after = wait_complete(&store, "web", T).await;
    stop.cancel();
    let (max_pods, min_ready) = sampler.await.unwrap();
    assert!(max_pods <= 5, "saw {max_pods} pods at once");
    assert!(min_ready >= 3, "saw only {min_ready} ready pods");

    assert_eq!(after["status"]["observedGeneration"], 2);
    let pods = list(&store, &pods(), "app=web");
    assert_eq!(pods.len(), 4);
    assert!(
        pods.iter()
            .all(|p| label(p, "pod-template-hash") == new_hash)
    );
    assert!(
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.26")
    );
    let old = get(&store, &replicasets(), &format!("web-{old_hash}")).unwrap();
    assert_eq!(
        old["spec"]["replicas"], 0,
        "the old ReplicaSet is kept, scaled to zero"
    );
    let new = get(&store, &replicasets(), &format!("web-{new_hash}")).unwrap();
    assert_eq!(
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        after["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );

    // Rolling back to the first template reuses its ReplicaSet as revision 3.
    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}}),
    );
    eventually(T, "rollback", || {
        let d = get(&store, &deployments(), "web")?;
        (rollout_complete(&d) && d["status"]["observedGeneration"] == 3).then_some(())
    })
    .await;
    let back = get(&store, &replicasets(), &format!("web-{old_hash}")).unwrap();
    assert_eq!(back["spec"]["replicas"], 4);
    assert_eq!(
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
}

#[tokio::test]
async fn a_paused_deployment_does_not_progress_until_resumed() {
    let (store, _c) = start();
    create(&store, &deployments(), deployment("web", 2, "nginx:1.25"));
    let before = wait_complete(&store, "web", T).await;
    let old_hash = pod_template_hash(&before["spec"]["template"]);

    let patched = patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"paused": true, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}}),
    );
    let new_hash = pod_template_hash(&patched["spec"]["template"]);
    let paused = eventually(T, "the paused status", || {
        let d = get(&store, &deployments(), "web")?;
        (condition(&d, "Progressing")?["reason"] == "DeploymentPaused").then_some(d)
    })
    .await;
    assert_eq!(
        condition(&paused, "Progressing").unwrap()["status"],
        "Unknown"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        get(&store, &replicasets(), &format!("web-{new_hash}")).is_none(),
        "no new ReplicaSet while paused"
    );
    let running = list(&store, &pods(), "app=web");
    assert_eq!(running.len(), 2);
    assert!(
        running
            .iter()
            .all(|p| label(p, "pod-template-hash") == old_hash)
    );
    let d = get(&store, &deployments(), "web").unwrap();
    assert_eq!(d["status"]["updatedReplicas"], 0);
    assert!(!rollout_complete(&d));

    // Scaling still works while paused.
    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"replicas": 3}}),
    );
    eventually(T, "scaling while paused", || {
        (list(&store, &pods(), "app=web")
            .iter()
            .filter(|p| ready(p))
            .count()
            == 3)
            .then_some(())
    })
    .await;
    assert!(get(&store, &replicasets(), &format!("web-{new_hash}")).is_none());

    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"paused": false}}),
    );
    wait_complete(&store, "web", T).await;
    let pods = list(&store, &pods(), "app=web");
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| label(p, "pod-template-hash") == new_hash)
    );
}

#[tokio::test]
async fn pausing_right_after_a_template_change_wins_the_race() {
    let (store, _c) = start();
    create(&store, &deployments(), deployment("web", 2, "nginx:1.25"));
    wait_complete(&store, "web", T).await;
    let patched = patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}}),
    );
    // Like a webhook or operator reacting to the change within a few milliseconds.
    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"paused": true}}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_hash = pod_template_hash(&patched["spec"]["template"]);
    assert!(get(&store, &replicasets(), &format!("web-{new_hash}")).is_none());
}

#[tokio::test]
async fn without_the_delay_a_late_pause_loses_the_race() {
    // The same sequence, but pausing after the configured delay has passed:
    // the new ReplicaSet already exists, as it would in a cluster.
    let store = ramp_sim::Store::new();
    let _c = Controllers::start(
        store.clone(),
        ControllerConfig {
            template_change_delay: Duration::from_millis(20),
            ..Default::default()
        },
    );
    create(&store, &deployments(), deployment("web", 2, "nginx:1.25"));
    wait_complete(&store, "web", T).await;
    let patched = patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}}),
    );
    let new_hash = pod_template_hash(&patched["spec"]["template"]);
    eventually(T, "the new ReplicaSet", || {
        get(&store, &replicasets(), &format!("web-{new_hash}"))
    })
    .await;
}

#[tokio::test]
async fn a_bad_image_never_becomes_ready_and_the_deadline_is_exceeded() {
    let (store, _c) = start();
    let mut d = deployment("web", 2, "nginx:1.25");
    d["spec"]["progressDeadlineSeconds"] = json!(1);
    create(&store, &deployments(), d);
    wait_complete(&store, "web", T).await;
    let patched = patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:bad"}]}}}}),
    );
    let new_hash = pod_template_hash(&patched["spec"]["template"]);
    let stuck = eventually(T, "a new pod stuck pulling", || {
        list(&store, &pods(), &format!("pod-template-hash={new_hash}"))
            .into_iter()
            .find(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "ImagePullBackOff"
            })
    })
    .await;
    assert_eq!(stuck["status"]["phase"], "Pending");
    assert!(!ready(&stuck));

    let d = get(&store, &deployments(), "web").unwrap();
    assert!(!rollout_complete(&d));
    assert_eq!(condition(&d, "Progressing").unwrap()["status"], "True");

    let exceeded = eventually(T, "ProgressDeadlineExceeded", || {
        let d = get(&store, &deployments(), "web")?;
        (condition(&d, "Progressing")?["reason"] == "ProgressDeadlineExceeded").then_some(d)
    })
    .await;
    let c = condition(&exceeded, "Progressing").unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(
        c["message"],
        json!(format!(
            "ReplicaSet \"web-{new_hash}\" has timed out progressing."
        ))
    );
    // The old pods keep serving: availability stays within maxUnavailable (25% of 2 rounds to 0).
    let ready_old = list(&store, &pods(), "app=web")
        .iter()
        .filter(|p| ready(p))
        .count();
    assert_eq!(ready_old, 2);
    assert_eq!(exceeded["status"]["availableReplicas"], 2);
    assert_eq!(condition(&exceeded, "Available").unwrap()["status"], "True");

    // Fixing the image lets the rollout finish.
    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}}),
    );
    wait_complete(&store, "web", T).await;
}

#[tokio::test]
async fn the_never_ready_annotation_leaves_the_rollout_waiting() {
    let (store, _c) = start();
    let mut d = deployment("web", 1, "nginx:1.25");
    d["spec"]["template"]["metadata"]["annotations"] = json!({"sim.ramp.dev/never-ready": "true"});
    create(&store, &deployments(), d);
    let pod = eventually(T, "a crash-looping pod", || {
        list(&store, &pods(), "app=web").into_iter().find(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    })
    .await;
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(!ready(&pod));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = get(&store, &deployments(), "web").unwrap();
    assert_eq!(d["status"]["availableReplicas"], 0);
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    assert_eq!(condition(&d, "Available").unwrap()["status"], "False");
    assert!(!rollout_complete(&d));
}

#[tokio::test]
async fn ready_after_ms_delays_one_pod() {
    let (store, _c) = start();
    let mut d = deployment("slow", 1, "nginx:1.25");
    d["spec"]["template"]["metadata"]["annotations"] =
        json!({"sim.ramp.dev/ready-after-ms": "700"});
    create(&store, &deployments(), d);
    let started = tokio::time::Instant::now();
    let pod = eventually(T, "the pod", || {
        list(&store, &pods(), "app=slow").into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !ready(&get(&store, &pods(), name(&pod)).unwrap()),
        "ready too early"
    );
    wait_complete(&store, "slow", T).await;
    assert!(started.elapsed() >= Duration::from_millis(650));
}

#[tokio::test]
async fn scaling_up_and_down() {
    let (store, _c) = start();
    create(&store, &deployments(), deployment("web", 2, "nginx:1.25"));
    wait_complete(&store, "web", T).await;
    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"replicas": 5}}),
    );
    let d = wait_complete(&store, "web", T).await;
    assert_eq!(d["status"]["readyReplicas"], 5);
    assert_eq!(list(&store, &pods(), "app=web").len(), 5);
    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"replicas": 1}}),
    );
    eventually(T, "scale down to 1", || {
        let d = get(&store, &deployments(), "web")?;
        (rollout_complete(&d) && list(&store, &pods(), "app=web").len() == 1).then_some(())
    })
    .await;
    // Only one ReplicaSet was ever needed.
    assert_eq!(list(&store, &replicasets(), "app=web").len(), 1);
}

#[tokio::test]
async fn recreate_removes_old_pods_before_starting_new_ones() {
    let (store, _c) = start();
    let mut d = deployment("db", 2, "postgres:15");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    create(&store, &deployments(), d);
    wait_complete(&store, "db", T).await;
    let watcher_store = store.clone();
    let mixed = tokio::spawn(async move {
        for _ in 0..300 {
            let hashes: BTreeSet<String> = list(&watcher_store, &pods(), "app=db")
                .iter()
                .map(|p| label(p, "pod-template-hash").to_owned())
                .collect();
            if hashes.len() > 1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    });
    patch(
        &store,
        &deployments(),
        "db",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "postgres:16"}]}}}}),
    );
    wait_complete(&store, "db", T).await;
    assert!(!mixed.await.unwrap(), "old and new pods ran together");
    assert!(
        list(&store, &pods(), "app=db")
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "postgres:16")
    );
}

#[tokio::test]
async fn services_get_endpoints_of_their_ready_pods() {
    let (store, _c) = start();
    create(
        &store,
        &services(),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    );
    create(&store, &deployments(), deployment("web", 2, "nginx:1.25"));
    wait_complete(&store, "web", T).await;
    let ep = eventually(T, "two ready endpoints", || {
        let ep = get(&store, &endpoints(), "web")?;
        (ep["subsets"][0]["addresses"].as_array()?.len() == 2).then_some(ep)
    })
    .await;
    assert_eq!(
        ep["subsets"][0]["ports"][0],
        json!({"name": "http", "port": 8080, "protocol": "TCP"})
    );
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
    let pod_names: BTreeSet<&str> = ep["subsets"][0]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["targetRef"]["name"].as_str().unwrap())
        .collect();
    let expected: Vec<Value> = list(&store, &pods(), "app=web")
        .iter()
        .map(|p| (**p).clone())
        .collect();
    assert_eq!(pod_names, expected.iter().map(name).collect());

    // A pod that is not ready is listed under notReadyAddresses.
    create(
        &store,
        &pods(),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-extra", "labels": {"app": "web"},
                            "annotations": {"sim.ramp.dev/never-ready": "true"}},
               "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}),
    );
    let ep = eventually(T, "a not-ready address", || {
        let ep = get(&store, &endpoints(), "web")?;
        (ep["subsets"][0]["notReadyAddresses"].as_array()?.len() == 1).then_some(ep)
    })
    .await;
    assert_eq!(
        ep["subsets"][0]["notReadyAddresses"][0]["targetRef"]["name"],
        "web-extra"
    );
    assert_eq!(ep["subsets"][0]["addresses"].as_array().unwrap().len(), 2);
    store
        .delete(&pods(), Some(NS), "web-extra", &DeleteOptions::default())
        .unwrap();

    patch(
        &store,
        &deployments(),
        "web",
        json!({"spec": {"replicas": 0}}),
    );
    eventually(T, "empty endpoints", || {
        let ep = get(&store, &endpoints(), "web")?;
        (ep["subsets"] == json!([])).then_some(())
    })
    .await;
    store
        .delete(&services(), Some(NS), "web", &DeleteOptions::default())
        .unwrap();
    eventually(T, "endpoints removed with the Service", || {
        get(&store, &endpoints(), "web").is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_removes_everything_in_it() {
    let (store, _c) = start();
    let ns = ramp_sim::resources::GroupResource::new("", "namespaces");
    store
        .create(
            &ns,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
            &Default::default(),
        )
        .unwrap();
    let mut d = deployment("web", 2, "nginx:1.25");
    d["metadata"]["namespace"] = json!("team");
    store
        .create(&deployments(), Some("team"), d, &Default::default())
        .unwrap();
    eventually(T, "pods in team", || {
        let n = store
            .list(&pods(), Some("team"), &Default::default())
            .ok()?
            .items
            .iter()
            .filter(|p| ready(p))
            .count();
        (n == 2).then_some(())
    })
    .await;
    store
        .delete(&ns, None, "team", &DeleteOptions::default())
        .unwrap();
    eventually(T, "the namespace to go", || {
        store.get(&ns, None, "team").is_err().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for gr in [deployments(), replicasets(), pods()] {
        assert!(
            store
                .list(&gr, Some("team"), &Default::default())
                .unwrap()
                .items
                .is_empty(),
            "{gr}"
        );
    }
}

#[tokio::test]
async fn deleting_a_deployment_collects_its_replica_sets_and_pods() {
    let (store, _c) = start();
    create(&store, &deployments(), deployment("web", 2, "nginx:1.25"));
    wait_complete(&store, "web", T).await;
    store
        .delete(&deployments(), Some(NS), "web", &DeleteOptions::default())
        .unwrap();
    eventually(T, "garbage collection", || {
        (list(&store, &replicasets(), "app=web").is_empty()
            && list(&store, &pods(), "app=web").is_empty())
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        list(&store, &pods(), "app=web").is_empty(),
        "pods came back"
    );
}
