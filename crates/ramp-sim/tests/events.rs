//! Events are one storage seen through two APIs, as on a real cluster: what kube-runtime's
//! `Recorder` writes through `events.k8s.io/v1` is what `kubectl describe` and
//! `kubectl get events` (core `v1`) show, and core Events written by older clients are readable
//! through `events.k8s.io/v1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use ramp_sim::TestCluster;
use serde_json::Value;

async fn kubectl(c: &TestCluster, args: &[&str], stdin: Option<&str>) -> String {
    // `TestCluster::kubectl` sets the kubeconfig and a discovery cache of this test's own.
    let out = c.kubectl_output(args, stdin).await.expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn config_map(c: &TestCluster, name: &str) -> ConfigMap {
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap()
}

/// The lines of the `Events:` section of `kubectl describe` output.
fn events_section(describe: &str) -> Vec<&str> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .skip(1)
        .map(str::trim)
        .collect()
}

#[tokio::test]
async fn recorder_events_show_in_kubectl_describe_and_get_events() {
    let c = TestCluster::start().await.unwrap();
    let subject = config_map(&c, "subject").await;
    let bystander = config_map(&c, "bystander").await;
    let recorder = Recorder::new(
        c.client(),
        Reporter {
            controller: "ramp-test".into(),
            instance: None,
        },
    );
    let tested = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello from the recorder".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder
        .publish(&tested, &subject.object_ref(&()))
        .await
        .unwrap();
    let other = Event {
        type_: EventType::Warning,
        reason: "Unrelated".into(),
        note: Some("about another object".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder
        .publish(&other, &bystander.object_ref(&()))
        .await
        .unwrap();

    // describe lists core v1 Events with involvedObject.{name,namespace,kind,uid} selectors.
    let describe = kubectl(&c, &["describe", "configmap", "subject"], None).await;
    let section = events_section(&describe);
    let row = section
        .iter()
        .find(|l| l.contains("Tested"))
        .unwrap_or_else(|| panic!("no Tested event in:\n{describe}"));
    for want in ["Normal", "ramp-test", "hello from the recorder"] {
        assert!(row.contains(want), "{want:?} missing from {row:?}");
    }
    assert!(
        !describe.contains("Unrelated"),
        "only the subject's events:\n{describe}"
    );

    // A repeat is a series (kube-runtime merge-patches it through events.k8s.io/v1).
    recorder
        .publish(&tested, &subject.object_ref(&()))
        .await
        .unwrap();
    let describe = kubectl(&c, &["describe", "configmap", "subject"], None).await;
    let section = events_section(&describe);
    assert!(
        section
            .iter()
            .any(|l| l.contains("Tested") && l.contains("(x2 over")),
        "the repeat is counted:\n{describe}"
    );

    // kubectl get events: both events, as core Events.
    let table = kubectl(&c, &["get", "events"], None).await;
    let row = table
        .lines()
        .find(|l| l.contains("configmap/subject"))
        .unwrap_or_else(|| panic!("no event about configmap/subject in:\n{table}"));
    for want in ["Normal", "Tested", "hello from the recorder"] {
        assert!(row.contains(want), "{want:?} missing from {row:?}");
    }
    assert!(table.contains("configmap/bystander"), "{table}");
    let json = kubectl(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=subject",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let list: Value = serde_json::from_str(&json).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["apiVersion"], "v1");
    assert_eq!(items[0]["message"], "hello from the recorder");
    assert_eq!(items[0]["reportingComponent"], "ramp-test");
    assert_eq!(items[0]["series"]["count"], 2);
    assert_eq!(
        items[0]["involvedObject"]["uid"].as_str(),
        subject.uid().as_deref()
    );

    // The same Event through events.k8s.io/v1, selected by its own field names.
    let json = kubectl(
        &c,
        &[
            "get",
            "events.events.k8s.io",
            "--field-selector",
            "regarding.name=subject,reportingController=ramp-test",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let list: Value = serde_json::from_str(&json).unwrap();
    let view = list["items"].as_array().unwrap();
    assert_eq!(view.len(), 1, "{json}");
    assert_eq!(view[0]["note"], "hello from the recorder");
    assert_eq!(view[0]["metadata"], items[0]["metadata"], "one object");
}

#[tokio::test]
async fn core_events_are_read_and_watched_through_events_k8s_io() {
    let c = TestCluster::start().await.unwrap();
    let events: Api<NewEvent> = Api::namespaced(c.client(), "default");
    let mut watch = events
        .watch(
            &WatchParams::default().fields("regarding.kind=Deployment"),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    // A core Event, as client-go's legacy recorder (and kubectl-ramp) write them.
    kubectl(
        &c,
        &["create", "-f", "-"],
        Some(
            r#"
apiVersion: v1
kind: Event
metadata: {name: web.legacy}
involvedObject: {apiVersion: apps/v1, kind: Deployment, name: web, namespace: default}
reason: ScalingReplicaSet
message: Scaled up replica set web-abc to 3
type: Normal
source: {component: deployment-controller}
count: 3
firstTimestamp: "2025-01-02T03:04:05Z"
lastTimestamp: "2025-01-02T03:04:09Z"
"#,
        ),
    )
    .await;
    let list = events
        .list(&ListParams::default().fields("regarding.name=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.name_any(), "web.legacy");
    assert_eq!(
        e.note.as_deref(),
        Some("Scaled up replica set web-abc to 3")
    );
    assert_eq!(e.deprecated_count, Some(3));
    assert_eq!(
        e.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("deployment-controller")
    );
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.kind.as_deref()),
        Some("Deployment")
    );

    let seen = tokio::time::timeout(Duration::from_secs(10), watch.try_next())
        .await
        .expect("a watch event within 10s")
        .unwrap()
        .unwrap();
    match seen {
        WatchEvent::Added(w) => {
            assert_eq!(w.name_any(), "web.legacy");
            assert_eq!(w.reason.as_deref(), Some("ScalingReplicaSet"));
            assert_eq!(w.note, e.note);
            assert_eq!(w.metadata.resource_version, e.metadata.resource_version);
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
}
