//! kube-rs 5 against the sim: CRUD, the four patch types, the runtime watcher (list+watch,
//! bookmarks, resume, 410 re-list, streaming lists), the finalizer helper, the events recorder,
//! and optimistic-concurrency conflicts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinEvent, finalizer};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use ramp_sim::store::StoreConfig;
use ramp_sim::{ServerConfig, TestCluster};
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "sidecar", "image": "envoy:1.30"}
                ]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn api_crud_and_conflict() {
    let c = TestCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("app", "x")]))
        .await
        .unwrap();
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "v");
    assert!(api.get_opt("missing").await.unwrap().is_none());

    let list = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    let none = api
        .list(&ListParams::default().labels("app!=x"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // replace with the current resourceVersion works; with a stale one conflicts.
    let mut next = got.clone();
    next.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = api
        .replace("a", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version(), got.resource_version());
    let err = api
        .replace("a", &PostParams::default(), &next)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert!(s.is_conflict(), "{s:?}"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    let err = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.is_already_exists()),
        "{err:?}"
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.is_not_found()),
        "{err:?}"
    );
}

#[tokio::test]
async fn all_four_patch_types() {
    let c = TestCluster::start().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(c.client(), "default");
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();

    // Merge patch.
    let d = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.labels()["tier"], "front");

    // JSON patch with a passing and a failing test.
    let p: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3}
    ]))
    .unwrap();
    let d = api
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(p))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 9}
    ]))
    .unwrap();
    let err = api
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(failing))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );

    // Strategic merge patch: containers merge by name, env by name.
    let d = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.28", "env": [{"name": "B", "value": "3"}]}
            ]}}}})),
        )
        .await
        .unwrap();
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 2, "the sidecar must survive");
    let app = pod.containers.iter().find(|c| c.name == "app").unwrap();
    assert_eq!(app.image.as_deref(), Some("nginx:1.28"));
    let env: Vec<(String, String)> = app
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(
        env,
        vec![("A".into(), "1".into()), ("B".into(), "3".into())]
    );

    // Server-side apply: creates (201) when missing, merges when present.
    let applied = api
        .patch(
            "api",
            &PatchParams::apply("ramp-test"),
            &Patch::Apply(deployment("api")),
        )
        .await
        .unwrap();
    assert_eq!(applied.name_any(), "api");
    // Another manager applying only replicas merges: the fields ramp-test applied stay
    // (the same manager leaving them out would remove them, as kube-apiserver does).
    let again = api
        .patch(
            "api",
            &PatchParams::apply("ramp-scaler").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api"}, "spec": {"replicas": 5}
            })),
        )
        .await
        .unwrap();
    assert_eq!(again.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(
        again.spec.unwrap().template.spec.unwrap().containers.len(),
        2
    );

    // Status subresource through patch_status: spec untouched.
    let s = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"readyReplicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s.status.unwrap().ready_replicas, Some(3));
    assert_eq!(s.spec.unwrap().replicas, Some(3));

    // Scale subresource.
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
}

async fn next_event<S>(s: &mut S) -> Event<ConfigMap>
where
    S: futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("watcher event within 10s")
            .expect("stream open")
        {
            Ok(ev) => return ev,
            Err(e) => eprintln!("watcher error (retried): {e}"),
        }
    }
}

fn names(ev: &Event<ConfigMap>) -> String {
    match ev {
        Event::Init => "Init".into(),
        Event::InitApply(o) => format!("InitApply({})", o.name_any()),
        Event::InitDone => "InitDone".into(),
        Event::Apply(o) => format!("Apply({})", o.name_any()),
        Event::Delete(o) => format!("Delete({})", o.name_any()),
    }
}

#[tokio::test]
async fn watcher_lists_watches_and_relists_after_410() {
    let c = TestCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    api.create(&PostParams::default(), &cm("a", &[("app", "x")]))
        .await
        .unwrap();
    let cfg = watcher::Config::default().labels("app=x").timeout(1);
    let mut w = watcher::watcher(api.clone(), cfg).boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(names(&next_event(&mut w).await));
    }
    assert_eq!(seen, vec!["Init", "InitApply(a)", "InitDone"]);

    api.create(&PostParams::default(), &cm("b", &[("app", "x")]))
        .await
        .unwrap();
    assert_eq!(names(&next_event(&mut w).await), "Apply(b)");
    api.delete("b", &DeleteParams::default()).await.unwrap();
    assert_eq!(names(&next_event(&mut w).await), "Delete(b)");

    // While the watcher is not polled: unrelated writes, then the history is compacted.
    // Its next watch (after the 1 s timeout) resumes from a version that is gone: 410 → re-list.
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("other{i}"), &[]))
            .await
            .unwrap();
    }
    c.store().compact();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.create(&PostParams::default(), &cm("c", &[("app", "x")]))
        .await
        .unwrap();
    let mut saw_410 = false;
    let mut after = Vec::new();
    while after.last().map(String::as_str) != Some("InitDone") {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
        {
            Ok(ev) => after.push(names(&ev)),
            Err(watcher::Error::WatchError(s)) => {
                assert_eq!(s.code, 410, "{s:?}");
                saw_410 = true;
            }
            Err(e) => panic!("unexpected watcher error {e}"),
        }
    }
    assert!(
        saw_410,
        "the resumed watch must be told its version expired: {after:?}"
    );
    assert_eq!(
        after,
        vec!["Init", "InitApply(a)", "InitApply(c)", "InitDone"]
    );
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    let c = TestCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &cm(n, &[]))
            .await
            .unwrap();
    }
    let mut w = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(names(&next_event(&mut w).await));
    }
    assert_eq!(
        seen,
        vec!["Init", "InitApply(a)", "InitApply(b)", "InitDone"]
    );
    api.create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    assert_eq!(names(&next_event(&mut w).await), "Apply(c)");
}

#[tokio::test]
async fn raw_watch_resumes_and_sends_bookmarks() {
    let c = TestCluster::start_with(
        StoreConfig::default(),
        ServerConfig {
            bookmark_interval: Duration::from_millis(200),
            ..ServerConfig::default()
        },
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    // Resume from a's version: only b's creation (and later events) arrive.
    let rv = a.resource_version().unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(3), &rv)
        .await
        .unwrap()
        .boxed();
    let mut got_b = false;
    let mut bookmark_rv = None;
    while let Some(ev) = s.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(o) => {
                assert_eq!(o.name_any(), "b");
                got_b = true;
            }
            WatchEvent::Bookmark(b) => {
                bookmark_rv = Some(b.metadata.resource_version);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got_b);
    let bookmark_rv: u64 = bookmark_rv.unwrap().parse().unwrap();
    assert!(bookmark_rv >= a.resource_version().unwrap().parse::<u64>().unwrap());

    // A version older than the history: an in-stream ERROR with 410 Expired.
    c.store().compact();
    let mut s = api
        .watch(&WatchParams::default().timeout(3), &rv)
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected an in-stream 410, got {other:?}"),
    }

    // timeoutSeconds ends the stream cleanly.
    let start = std::time::Instant::now();
    let mut s = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    while s.try_next().await.unwrap().is_some() {}
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test]
async fn finalizer_helper_adds_and_removes_its_finalizer() {
    let c = TestCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    api.create(&PostParams::default(), &cm("f", &[]))
        .await
        .unwrap();
    let name = "example.com/cleanup";
    let run = |obj: ConfigMap| {
        let api = api.clone();
        async move {
            finalizer(&api, name, Arc::new(obj), |ev| async move {
                Ok::<_, Never>(match ev {
                    FinEvent::Apply(_) => kube::runtime::controller::Action::await_change(),
                    FinEvent::Cleanup(_) => kube::runtime::controller::Action::await_change(),
                })
            })
            .await
        }
    };
    run(api.get("f").await.unwrap()).await.unwrap();
    let with = api.get("f").await.unwrap();
    assert_eq!(with.finalizers(), &[name.to_string()]);
    run(with).await.unwrap(); // Apply
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("f").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    run(deleting).await.unwrap(); // Cleanup: removes the finalizer, object goes away
    assert!(api.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn events_recorder_publishes_and_updates_series() {
    let c = TestCluster::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let obj = cms
        .create(&PostParams::default(), &cm("subject", &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        c.client(),
        Reporter {
            controller: "ramp-test".into(),
            instance: None,
        },
    );
    let ev = KEvent {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = obj.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.client(), "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "a repeat becomes a series, not a new event"
    );
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Tested"));
    assert_eq!(
        e.regarding.as_ref().unwrap().name.as_deref(),
        Some("subject")
    );
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
}
