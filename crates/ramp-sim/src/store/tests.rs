use super::*;
use pretty_assertions::assert_eq;

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn cms() -> GroupResource {
    GroupResource::new("", "configmaps")
}

fn deploy(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}
    })
}

fn deploys() -> GroupResource {
    GroupResource::new("apps", "deployments")
}

fn rv(o: &Value) -> u64 {
    meta_str(o, "resourceVersion").parse().unwrap()
}

#[test]
fn default_namespaces_exist() {
    let s = Store::new();
    let ns = GroupResource::new("", "namespaces");
    for n in ["default", "kube-system"] {
        let o = s.get(&ns, None, n).unwrap();
        assert_eq!(o["status"]["phase"], "Active");
    }
}

#[test]
fn create_sets_system_fields_and_rv_increases_globally() {
    let s = Store::new();
    let a = s
        .create(&cms(), Some("default"), cm("a"), &WriteOptions::default())
        .unwrap();
    let b = s
        .create(
            &deploys(),
            Some("default"),
            deploy("b"),
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(a.created);
    assert_eq!(a.object["metadata"]["namespace"], "default");
    assert_eq!(meta_str(&a.object, "uid").len(), 36);
    assert!(!meta_str(&a.object, "creationTimestamp").is_empty());
    assert!(rv(&b.object) > rv(&a.object));
    assert_eq!(b.object["metadata"]["generation"], 1);
    assert!(a.object["metadata"].get("generation").is_none());
    assert_eq!(s.resource_version(), rv(&b.object));
    let err = s
        .create(&cms(), Some("default"), cm("a"), &WriteOptions::default())
        .unwrap_err();
    assert_eq!(err.reason, "AlreadyExists");
}

#[test]
fn generate_name_and_missing_namespace() {
    let s = Store::new();
    let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}});
    let w = s
        .create(&cms(), Some("default"), o.clone(), &WriteOptions::default())
        .unwrap();
    let name = meta_str(&w.object, "name");
    assert!(name.starts_with("x-") && name.len() == 7, "{name}");
    let err = s
        .create(&cms(), Some("nope"), o, &WriteOptions::default())
        .unwrap_err();
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nope\" not found");
}

#[test]
fn update_conflicts_on_stale_rv_and_generation_tracks_spec() {
    let s = Store::new();
    let w = s
        .create(
            &deploys(),
            Some("default"),
            deploy("d"),
            &WriteOptions::default(),
        )
        .unwrap();
    let mut stale = (*w.object).clone();
    let mut fresh = (*w.object).clone();
    fresh["spec"]["replicas"] = json!(3);
    let u = s
        .update(
            &deploys(),
            Some("default"),
            "d",
            fresh,
            None,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(u.object["metadata"]["generation"], 2);
    stale["spec"]["replicas"] = json!(5);
    let err = s
        .update(
            &deploys(),
            Some("default"),
            "d",
            stale.clone(),
            None,
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, "Conflict");
    // Empty resourceVersion: unconditional.
    stale["metadata"]["resourceVersion"] = json!("");
    let u2 = s
        .update(
            &deploys(),
            Some("default"),
            "d",
            stale,
            None,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(u2.object["spec"]["replicas"], 5);
    // Label change: no generation bump.
    let p = s
        .patch(
            &deploys(),
            Some("default"),
            "d",
            PatchType::Merge,
            &json!({"metadata": {"labels": {"x": "y"}}}),
            None,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(p.object["metadata"]["generation"], 3);
    assert_eq!(p.object["metadata"]["labels"]["x"], "y");
}

#[test]
fn status_subresource_separation() {
    let s = Store::new();
    s.create(
        &deploys(),
        Some("default"),
        deploy("d"),
        &WriteOptions::default(),
    )
    .unwrap();
    let w = s
        .patch(
            &deploys(),
            Some("default"),
            "d",
            PatchType::Merge,
            &json!({"spec": {"replicas": 2}, "status": {"replicas": 7}}),
            Some(Subresource::Status),
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(w.object["status"]["replicas"], 7);
    assert_eq!(
        w.object["spec"]["replicas"], 1,
        "status write must ignore spec"
    );
    let w = s
        .patch(
            &deploys(),
            Some("default"),
            "d",
            PatchType::Merge,
            &json!({"spec": {"replicas": 2}, "status": {"replicas": 9}}),
            None,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(
        w.object["status"]["replicas"], 7,
        "main write must ignore status"
    );
    assert_eq!(w.object["spec"]["replicas"], 2);
    let scale = s.get_scale(&deploys(), Some("default"), "d").unwrap();
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=d");
    let w = s
        .patch(
            &deploys(),
            Some("default"),
            "d",
            PatchType::Merge,
            &json!({"spec": {"replicas": 4}}),
            Some(Subresource::Scale),
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(w.object["spec"]["replicas"], 4);
}

#[test]
fn noop_update_does_not_bump_rv() {
    let s = Store::new();
    let w = s
        .create(&cms(), Some("default"), cm("a"), &WriteOptions::default())
        .unwrap();
    let again = s
        .update(
            &cms(),
            Some("default"),
            "a",
            (*w.object).clone(),
            None,
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(rv(&again.object), rv(&w.object));
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let s = Store::new();
    let mut o = cm("f");
    o["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.create(&cms(), Some("default"), o, &WriteOptions::default())
        .unwrap();
    let d = s
        .delete(&cms(), Some("default"), "f", &DeleteOptions::default())
        .unwrap();
    let Deleted::Pending(p) = d else {
        panic!("expected pending")
    };
    assert!(p.pointer("/metadata/deletionTimestamp").is_some());
    // Adding a finalizer now is forbidden.
    let err = s
        .patch(
            &cms(),
            Some("default"),
            "f",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": ["example.com/hold", "other"]}}),
            None,
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 403);
    s.patch(
        &cms(),
        Some("default"),
        "f",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        None,
        &WriteOptions::default(),
    )
    .unwrap();
    assert!(
        s.get(&cms(), Some("default"), "f")
            .unwrap_err()
            .is_not_found()
    );
}

fn owned_cm(name: &str, owner: &Value) -> Value {
    let mut o = cm(name);
    o["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"), "controller": true, "blockOwnerDeletion": true
    }]);
    o
}

#[test]
fn garbage_collection_background_orphan_foreground() {
    let s = Store::new();
    let w = WriteOptions::default();
    // Background.
    let owner = s
        .create(&deploys(), Some("default"), deploy("o1"), &w)
        .unwrap()
        .object;
    s.create(&cms(), Some("default"), owned_cm("c1", &owner), &w)
        .unwrap();
    s.delete(&deploys(), Some("default"), "o1", &DeleteOptions::default())
        .unwrap();
    assert!(
        s.get(&cms(), Some("default"), "c1")
            .unwrap_err()
            .is_not_found()
    );
    // Orphan.
    let owner = s
        .create(&deploys(), Some("default"), deploy("o2"), &w)
        .unwrap()
        .object;
    s.create(&cms(), Some("default"), owned_cm("c2", &owner), &w)
        .unwrap();
    s.delete(
        &deploys(),
        Some("default"),
        "o2",
        &DeleteOptions {
            propagation: Some(Propagation::Orphan),
            ..Default::default()
        },
    )
    .unwrap();
    let c2 = s.get(&cms(), Some("default"), "c2").unwrap();
    assert!(c2.pointer("/metadata/ownerReferences").is_none());
    // Foreground with a dependent that has a finalizer: owner waits for it.
    let owner = s
        .create(&deploys(), Some("default"), deploy("o3"), &w)
        .unwrap()
        .object;
    let mut dep = owned_cm("c3", &owner);
    dep["metadata"]["finalizers"] = json!(["hold"]);
    s.create(&cms(), Some("default"), dep, &w).unwrap();
    let d = s
        .delete(
            &deploys(),
            Some("default"),
            "o3",
            &DeleteOptions {
                propagation: Some(Propagation::Foreground),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(matches!(d, Deleted::Pending(_)));
    let o3 = s.get(&deploys(), Some("default"), "o3").unwrap();
    assert_eq!(o3["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    s.patch(
        &cms(),
        Some("default"),
        "c3",
        PatchType::Json,
        &json!([{"op": "remove", "path": "/metadata/finalizers"}]),
        None,
        &w,
    )
    .unwrap();
    assert!(
        s.get(&cms(), Some("default"), "c3")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.get(&deploys(), Some("default"), "o3")
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn namespace_deletion_removes_contents() {
    let s = Store::new();
    let w = WriteOptions::default();
    let ns = GroupResource::new("", "namespaces");
    s.create(&ns, None, json!({"metadata": {"name": "t1"}}), &w)
        .unwrap();
    s.create(&cms(), Some("t1"), cm("a"), &w).unwrap();
    s.delete(&ns, None, "t1", &DeleteOptions::default())
        .unwrap();
    assert!(s.get(&cms(), Some("t1"), "a").unwrap_err().is_not_found());
    assert!(s.get(&ns, None, "t1").unwrap_err().is_not_found());
}

#[test]
fn list_paging_and_selectors() {
    let s = Store::new();
    let w = WriteOptions::default();
    for i in 0..5 {
        let mut o = cm(&format!("c{i}"));
        o["metadata"]["labels"] = json!({"n": i.to_string()});
        s.create(&cms(), Some("default"), o, &w).unwrap();
    }
    s.create(&cms(), Some("kube-system"), cm("other"), &w)
        .unwrap();
    let all = s.list(&cms(), None, &ListOptions::default()).unwrap();
    assert_eq!(all.items.len(), 6);
    let page1 = s
        .list(
            &cms(),
            Some("default"),
            &ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page1.items.len(), 2);
    assert_eq!(page1.remaining, Some(3));
    let page2 = s
        .list(
            &cms(),
            Some("default"),
            &ListOptions {
                limit: Some(10),
                continue_token: page1.continue_token,
                ..Default::default()
            },
        )
        .unwrap();
    let names: Vec<_> = page2
        .items
        .iter()
        .map(|o| meta_str(o, "name").to_string())
        .collect();
    assert_eq!(names, vec!["c2", "c3", "c4"]);
    assert!(page2.continue_token.is_none());
    let sel = s
        .list(
            &cms(),
            None,
            &ListOptions {
                label_selector: Some("n=3".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(sel.items.len(), 1);
    let by_name = s
        .list(
            &cms(),
            None,
            &ListOptions {
                field_selector: Some("metadata.name=other".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
}

#[tokio::test]
async fn watch_resumes_and_expires() {
    let s = Store::with_config(StoreConfig {
        watch_history: 3,
        watch_channel: 64,
    });
    let w = WriteOptions::default();
    let first = s
        .create(&cms(), Some("default"), cm("a"), &w)
        .unwrap()
        .object;
    let start = rv(&first);
    let mut watch = s
        .watch(
            &cms(),
            Some("default"),
            &WatchOptions {
                resource_version: Some(start.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    s.create(&cms(), Some("default"), cm("b"), &w).unwrap();
    s.delete(&cms(), Some("default"), "a", &DeleteOptions::default())
        .unwrap();
    let e1 = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (e1.kind, meta_str(&e1.event.object, "name")),
        (EventKind::Added, "b")
    );
    let e2 = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (e2.kind, meta_str(&e2.event.object, "name")),
        (EventKind::Deleted, "a")
    );
    // Resume from `start` again: still in history.
    let mut again = s
        .watch(
            &cms(),
            None,
            &WatchOptions {
                resource_version: Some(start.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.next().await.unwrap().unwrap().kind, EventKind::Added);
    for i in 0..5 {
        s.create(&cms(), Some("default"), cm(&format!("x{i}")), &w)
            .unwrap();
    }
    let err = s
        .watch(
            &cms(),
            None,
            &WatchOptions {
                resource_version: Some(start.to_string()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code, 410);
    // No resourceVersion: synthetic ADDED for existing objects.
    let mut fresh = s
        .watch(&cms(), Some("default"), &WatchOptions::default())
        .unwrap();
    let e = fresh.next().await.unwrap().unwrap();
    assert_eq!(e.kind, EventKind::Added);
}

#[tokio::test]
async fn filtered_watch_turns_updates_into_adds_and_deletes() {
    let s = Store::new();
    let w = WriteOptions::default();
    s.create(&cms(), Some("default"), cm("a"), &w).unwrap();
    let rv0 = s.resource_version();
    let mut watch = s
        .watch(
            &cms(),
            None,
            &WatchOptions {
                resource_version: Some(rv0.to_string()),
                label_selector: Some("app=x".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let lab = |v: Value| json!({"metadata": {"labels": {"app": v}}});
    s.patch(
        &cms(),
        Some("default"),
        "a",
        PatchType::Merge,
        &lab(json!("x")),
        None,
        &w,
    )
    .unwrap();
    s.patch(
        &cms(),
        Some("default"),
        "a",
        PatchType::Merge,
        &lab(json!("y")),
        None,
        &w,
    )
    .unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().kind, EventKind::Added);
    assert_eq!(
        watch.next().await.unwrap().unwrap().kind,
        EventKind::Deleted
    );
}

#[test]
fn crd_registers_type_and_deleting_it_removes_objects() {
    let s = Store::new();
    let w = WriteOptions::default();
    let crds = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let created = s.create(&crds, None, crd, &w).unwrap().object;
    let conds = created["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True")
    );
    let widgets = GroupResource::new("example.com", "widgets");
    assert!(s.resolve("example.com", "v1", "widgets").is_some());
    let wobj = s
        .create(
            &widgets,
            Some("default"),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"x": 1}}),
            &w,
        )
        .unwrap()
        .object;
    assert_eq!(wobj["metadata"]["generation"], 1);
    assert!(
        wobj.get("status").is_none(),
        "create ignores status with a status subresource"
    );
    s.delete(
        &crds,
        None,
        "widgets.example.com",
        &DeleteOptions::default(),
    )
    .unwrap();
    assert!(s.resolve("example.com", "v1", "widgets").is_none());
    assert_eq!(s.get(&widgets, Some("default"), "w").unwrap_err().code, 404);
}

#[test]
fn invalid_builtins_are_rejected_naming_the_field() {
    let s = Store::new();
    let mut d = deploy("bad");
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let err = s
        .create(&deploys(), Some("default"), d, &WriteOptions::default())
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(err.causes[0].field, "spec.template.metadata.labels");
    let err = s
        .create(
            &cms(),
            Some("default"),
            json!({"metadata": {"name": "Bad_Name"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.causes[0].field, "metadata.name");
    let err = s
        .create(
            &cms(),
            Some("default"),
            json!({"kind": "Secret", "metadata": {"name": "x"}}),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn list_and_watch_serve_the_current_json_of_each_object_serialized_once() {
    let s = Store::new();
    let w = WriteOptions::default();
    s.create(&cms(), Some("default"), cm("a"), &w).unwrap();
    let mut watch = s
        .watch(
            &cms(),
            Some("default"),
            &WatchOptions {
                resource_version: Some(s.resource_version().to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    let as_value = |b: Bytes| serde_json::from_slice::<Value>(&b).unwrap();

    let first = s
        .list(&cms(), Some("default"), &ListOptions::default())
        .unwrap();
    assert_eq!(as_value(first.item_json(0).unwrap()), *first.items[0]);

    // An update stores a new version: LIST and the watch event both carry it, not the old bytes.
    s.patch(
        &cms(),
        Some("default"),
        "a",
        PatchType::Merge,
        &json!({"data": {"k": "changed"}}),
        None,
        &w,
    )
    .unwrap();
    let second = s
        .list(&cms(), Some("default"), &ListOptions::default())
        .unwrap();
    let listed = second.item_json(0).unwrap();
    assert_eq!(as_value(listed.clone())["data"]["k"], "changed");
    assert_eq!(as_value(listed.clone()), *second.items[0]);
    let ev = watch.next().await.unwrap().unwrap();
    assert_eq!(ev.kind, EventKind::Modified);
    let line = as_value(ev.encoded_line());
    assert_eq!(line["type"], "MODIFIED");
    assert_eq!(line["object"], *second.items[0]);
    // One serialization of that version, shared by the LIST and the watch event.
    assert_eq!(ev.event.object_json().as_ptr(), listed.as_ptr());
    assert_eq!(first.item_json(0).unwrap(), first.item_json(0).unwrap());
    assert_eq!(second.item_json(1), None);
}

// ----- events.k8s.io/v1 Events: a view of the core v1 Events ---------------------------------

fn core_events() -> GroupResource {
    GroupResource::new("", "events")
}

fn view_events() -> GroupResource {
    GroupResource::new("events.k8s.io", "events")
}

/// An `events.k8s.io/v1` Event about ConfigMap `subject`, as kube-runtime's Recorder sends it.
fn view_event(name: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2025-01-02T03:04:05.123456Z",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": "subject",
                      "namespace": "default", "uid": "uid-subject"},
        "note": "hello", "reason": "Tested", "action": "Test", "type": "Normal",
        "reportingController": "ramp-test", "reportingInstance": "ramp-test-0",
        "deprecatedSource": {"component": "ramp-test"},
        "deprecatedFirstTimestamp": "2025-01-02T03:04:05Z",
        "deprecatedLastTimestamp": "2025-01-02T03:04:06Z",
        "deprecatedCount": 1,
    })
}

/// A core `v1` Event about ConfigMap `subject`, as client-go's legacy recorder sends it.
fn core_event(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "subject",
                           "namespace": "default", "uid": "uid-subject"},
        "message": "from core", "reason": "Legacy", "type": "Warning",
        "source": {"component": "kubectl-ramp", "host": "node-1"},
        "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:04:09Z",
        "count": 4, "reportingComponent": "kubectl-ramp", "reportingInstance": "cli",
    })
}

/// The next event of a watch, failing the test instead of hanging when none comes.
async fn next_event(w: &mut Watch) -> Delivered {
    tokio::time::timeout(std::time::Duration::from_secs(5), w.next())
        .await
        .expect("a watch event within 5s")
        .unwrap()
        .unwrap()
}

fn field_list(s: &Store, gr: &GroupResource, selector: &str) -> ApiResult<Vec<String>> {
    let list = s.list(
        gr,
        Some("default"),
        &ListOptions {
            field_selector: Some(selector.into()),
            ..Default::default()
        },
    )?;
    Ok(list
        .items
        .iter()
        .map(|o| meta_str(o, "name").to_string())
        .collect())
}

#[test]
fn an_event_created_through_events_k8s_io_is_a_core_event() {
    let s = Store::new();
    let created = s
        .create(
            &view_events(),
            Some("default"),
            view_event("subject.1"),
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(created.created);
    assert_eq!(created.object["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created.object["note"], "hello");
    assert_eq!(created.object["regarding"]["name"], "subject");

    let core = s.get(&core_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["kind"], "Event");
    assert_eq!(core["involvedObject"], view_event("x")["regarding"]);
    assert_eq!(core["message"], "hello");
    assert_eq!(core["source"], json!({"component": "ramp-test"}));
    assert_eq!(core["firstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(core["lastTimestamp"], "2025-01-02T03:04:06Z");
    assert_eq!(core["count"], 1);
    assert_eq!(core["reportingComponent"], "ramp-test");
    // Fields with the same name in both APIs.
    for f in ["eventTime", "reason", "action", "type", "reportingInstance"] {
        assert_eq!(core[f], view_event("x")[f], "{f}");
    }
    for f in [
        "regarding",
        "note",
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
        "reportingController",
    ] {
        assert!(core.get(f).is_none(), "core Event has no {f}: {core}");
    }
    // One object: same name, uid and resourceVersion through both APIs.
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        assert_eq!(meta_str(&core, f), meta_str(&created.object, f), "{f}");
    }
    assert_eq!(rv(&core), s.resource_version());
    let again = s.get(&view_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(*again, *created.object);
}

#[test]
fn core_field_selectors_find_events_created_through_events_k8s_io() {
    let s = Store::new();
    let w = WriteOptions::default();
    s.create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap();
    let mut other = view_event("other.1");
    other["regarding"]["name"] = json!("other");
    other["regarding"]["uid"] = json!("uid-other");
    s.create(&view_events(), Some("default"), other, &w)
        .unwrap();
    // What `kubectl describe configmap subject` asks for.
    let describe = "involvedObject.name=subject,involvedObject.namespace=default,\
                    involvedObject.kind=ConfigMap,involvedObject.uid=uid-subject";
    assert_eq!(
        field_list(&s, &core_events(), describe).unwrap(),
        vec!["subject.1"]
    );
    assert_eq!(
        field_list(
            &s,
            &core_events(),
            "reportingComponent=ramp-test,involvedObject.name!=subject"
        )
        .unwrap(),
        vec!["other.1"]
    );
    assert_eq!(
        field_list(&s, &core_events(), "involvedObject.name=nobody").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn core_events_are_seen_through_events_k8s_io_with_its_field_names() {
    let s = Store::new();
    let w = WriteOptions::default();
    let created = s
        .create(&core_events(), Some("default"), core_event("legacy.1"), &w)
        .unwrap()
        .object;
    let view = s.get(&view_events(), Some("default"), "legacy.1").unwrap();
    assert_eq!(view["apiVersion"], "events.k8s.io/v1");
    assert_eq!(view["kind"], "Event");
    assert_eq!(view["regarding"], core_event("x")["involvedObject"]);
    assert_eq!(view["note"], "from core");
    assert_eq!(
        view["deprecatedSource"],
        json!({"component": "kubectl-ramp", "host": "node-1"})
    );
    assert_eq!(view["deprecatedFirstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(view["deprecatedLastTimestamp"], "2025-01-02T03:04:09Z");
    assert_eq!(view["deprecatedCount"], 4);
    assert_eq!(view["reportingController"], "kubectl-ramp");
    assert_eq!(view["reportingInstance"], "cli");
    for f in [
        "involvedObject",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "reportingComponent",
    ] {
        assert!(
            view.get(f).is_none(),
            "events.k8s.io Event has no {f}: {view}"
        );
    }
    assert_eq!(view["metadata"], created["metadata"]);

    s.create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap();
    let list = s
        .list(&view_events(), Some("default"), &ListOptions::default())
        .unwrap();
    let names: Vec<&str> = list.items.iter().map(|o| meta_str(o, "name")).collect();
    assert_eq!(names, vec!["legacy.1", "subject.1"]);
    assert!(
        list.items
            .iter()
            .all(|o| o["apiVersion"] == "events.k8s.io/v1")
    );
    // Each item's JSON is its own (the view's), not the core object's.
    for i in 0..2 {
        let json: Value = serde_json::from_slice(&list.item_json(i).unwrap()).unwrap();
        assert_eq!(json, *list.items[i]);
    }
    // The core API lists both, in its own shape.
    let core = s
        .list(&core_events(), Some("default"), &ListOptions::default())
        .unwrap();
    assert_eq!(core.items.len(), 2);
    assert!(core.items.iter().all(|o| o.get("involvedObject").is_some()));
}

#[test]
fn events_k8s_io_field_selectors_use_its_own_field_names() {
    let s = Store::new();
    let w = WriteOptions::default();
    s.create(&core_events(), Some("default"), core_event("legacy.1"), &w)
        .unwrap();
    s.create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap();
    let view = view_events();
    assert_eq!(
        field_list(&s, &view, "regarding.name=subject").unwrap(),
        vec!["legacy.1", "subject.1"]
    );
    assert_eq!(
        field_list(
            &s,
            &view,
            "regarding.kind=ConfigMap,reportingController=ramp-test"
        )
        .unwrap(),
        vec!["subject.1"]
    );
    assert_eq!(
        field_list(&s, &view, "deprecatedSource.host=node-1,type=Warning").unwrap(),
        vec!["legacy.1"]
    );
    assert_eq!(
        field_list(&s, &view, "note=hello,metadata.name=subject.1").unwrap(),
        vec!["subject.1"]
    );
    assert_eq!(
        field_list(&s, &view, "regarding.name=nobody").unwrap(),
        Vec::<String>::new()
    );
    // The core names are not fields of events.k8s.io/v1 Events.
    let err = field_list(&s, &view, "involvedObject.name=subject").unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message.contains("\"involvedObject.name\"") && err.message.contains("regarding.name"),
        "{}",
        err.message
    );
    let err = field_list(&s, &view, "regarding.name").unwrap_err();
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn watches_on_either_api_see_events_written_through_the_other() {
    let s = Store::new();
    let w = WriteOptions::default();
    let from = WatchOptions {
        resource_version: Some(s.resource_version().to_string()),
        ..Default::default()
    };
    let mut core_watch = s.watch(&core_events(), Some("default"), &from).unwrap();
    let mut view_watch = s.watch(&view_events(), Some("default"), &from).unwrap();
    let mut regarding_subject = s
        .watch(
            &view_events(),
            None,
            &WatchOptions {
                field_selector: Some("regarding.name=subject".into()),
                ..from.clone()
            },
        )
        .unwrap();

    let created = s
        .create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap()
        .object;
    let e = next_event(&mut core_watch).await;
    assert_eq!(e.kind, EventKind::Added);
    assert_eq!(e.event.object["involvedObject"]["name"], "subject");
    assert_eq!(e.event.object["message"], "hello");
    assert_eq!(e.event.resource_version, rv(&created));
    let e = next_event(&mut view_watch).await;
    assert_eq!(e.kind, EventKind::Added);
    assert_eq!(*e.event.object, *created);
    let line: Value = serde_json::from_slice(&e.encoded_line()).unwrap();
    assert_eq!(line["object"], *created, "the view's own JSON");
    assert_eq!(
        next_event(&mut regarding_subject).await.kind,
        EventKind::Added
    );

    // Written through core: the view watch sees it converted, `previous` included.
    s.patch(
        &core_events(),
        Some("default"),
        "subject.1",
        PatchType::Merge,
        &json!({"message": "changed", "count": 2}),
        None,
        &w,
    )
    .unwrap();
    let e = next_event(&mut view_watch).await;
    assert_eq!(e.kind, EventKind::Modified);
    assert_eq!(e.event.object["note"], "changed");
    assert_eq!(e.event.object["deprecatedCount"], 2);
    assert!(e.event.object.get("message").is_none());
    let previous = e.event.previous.as_deref().unwrap();
    assert_eq!(previous["note"], "hello");
    assert_eq!(previous["apiVersion"], "events.k8s.io/v1");
    let line: Value = serde_json::from_slice(&e.encoded_line()).unwrap();
    assert_eq!(line["object"]["note"], "changed");
    assert_eq!(
        next_event(&mut core_watch).await.event.object["message"],
        "changed"
    );

    // Moving the event to another object: the filtered view watch sees it leave.
    s.patch(
        &core_events(),
        Some("default"),
        "subject.1",
        PatchType::Merge,
        &json!({"involvedObject": {"name": "other"}}),
        None,
        &w,
    )
    .unwrap();
    assert_eq!(
        next_event(&mut regarding_subject).await.kind,
        EventKind::Modified,
        "the message change"
    );
    let e = next_event(&mut regarding_subject).await;
    assert_eq!(e.kind, EventKind::Deleted);
    assert_eq!(e.event.object["regarding"]["name"], "other");
    let e = next_event(&mut view_watch).await;
    assert_eq!(e.kind, EventKind::Modified);
    assert_eq!(e.event.object["regarding"]["name"], "other");
    let e = next_event(&mut core_watch).await;
    assert_eq!(e.kind, EventKind::Modified);
    assert_eq!(e.event.object["involvedObject"]["name"], "other");

    // Created through core: seen by the view watch; a fresh view watch lists both.
    s.create(&core_events(), Some("default"), core_event("legacy.1"), &w)
        .unwrap();
    let e = next_event(&mut view_watch).await;
    assert_eq!(
        (e.kind, e.event.object["note"].clone()),
        (EventKind::Added, json!("from core"))
    );
    let mut initial = s
        .watch(&view_events(), Some("default"), &WatchOptions::default())
        .unwrap();
    for name in ["legacy.1", "subject.1"] {
        let e = next_event(&mut initial).await;
        assert_eq!(e.kind, EventKind::Added);
        assert_eq!(meta_str(&e.event.object, "name"), name);
        assert!(e.event.object.get("regarding").is_some());
        let json: Value = serde_json::from_slice(&e.event.object_json()).unwrap();
        assert_eq!(json, *e.event.object);
    }

    // Deleted through the view: gone from core, DELETED on both watches.
    s.delete(
        &view_events(),
        Some("default"),
        "legacy.1",
        &DeleteOptions::default(),
    )
    .unwrap();
    assert_eq!(next_event(&mut core_watch).await.kind, EventKind::Added);
    let e = next_event(&mut core_watch).await;
    assert_eq!(
        (e.kind, meta_str(&e.event.object, "name")),
        (EventKind::Deleted, "legacy.1")
    );
    let e = next_event(&mut view_watch).await;
    assert_eq!(
        (e.kind, meta_str(&e.event.object, "name")),
        (EventKind::Deleted, "legacy.1")
    );
    assert_eq!(e.event.object["note"], "from core");
    assert_eq!(
        s.get(&core_events(), Some("default"), "legacy.1")
            .unwrap_err()
            .code,
        404
    );
}

#[test]
fn a_series_patch_through_events_k8s_io_shows_in_the_core_event() {
    let s = Store::new();
    let w = WriteOptions::default();
    let created = s
        .create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap()
        .object;
    // kube-runtime's Recorder on a repeat: a merge patch of the whole cached event with a
    // series (no resourceVersion).
    let mut repeat = view_event("subject.1");
    repeat["series"] = json!({"count": 2, "lastObservedTime": "2025-01-02T03:05:00.000001Z"});
    repeat["deprecatedCount"] = json!(2);
    repeat["deprecatedLastTimestamp"] = json!("2025-01-02T03:05:00Z");
    let patched = s
        .patch(
            &view_events(),
            Some("default"),
            "subject.1",
            PatchType::Merge,
            &repeat,
            None,
            &w,
        )
        .unwrap();
    assert!(!patched.created);
    assert_eq!(patched.object["apiVersion"], "events.k8s.io/v1");
    assert_eq!(patched.object["series"]["count"], 2);
    assert_eq!(patched.object["deprecatedCount"], 2);
    assert_eq!(meta_str(&patched.object, "uid"), meta_str(&created, "uid"));
    assert!(rv(&patched.object) > rv(&created));
    let core = s.get(&core_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(core["count"], 2);
    assert_eq!(core["lastTimestamp"], "2025-01-02T03:05:00Z");
    assert_eq!(
        core["series"],
        json!({"count": 2, "lastObservedTime": "2025-01-02T03:05:00.000001Z"})
    );
    assert_eq!(core["message"], "hello");
    assert_eq!(
        meta_str(&core, "resourceVersion"),
        meta_str(&patched.object, "resourceVersion")
    );

    // JSON patches address the view's field names (`test` included); a failed test names it.
    let ok = s
        .patch(
            &view_events(),
            Some("default"),
            "subject.1",
            PatchType::Json,
            &json!([{"op": "test", "path": "/note", "value": "hello"},
                    {"op": "replace", "path": "/note", "value": "json"},
                    {"op": "remove", "path": "/deprecatedSource"}]),
            None,
            &w,
        )
        .unwrap();
    assert_eq!(ok.object["note"], "json");
    let core = s.get(&core_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(core["message"], "json");
    assert!(core.get("source").is_none());
    let err = s
        .patch(
            &view_events(),
            Some("default"),
            "subject.1",
            PatchType::Json,
            &json!([{"op": "test", "path": "/message", "value": "json"}]),
            None,
            &w,
        )
        .unwrap_err();
    assert_eq!(err.code, 422, "{err}");

    // A stale resourceVersion in a patch is a conflict, named as the view.
    let err = s
        .patch(
            &view_events(),
            Some("default"),
            "subject.1",
            PatchType::Merge,
            &json!({"metadata": {"resourceVersion": meta_str(&created, "resourceVersion")},
                    "note": "late"}),
            None,
            &w,
        )
        .unwrap_err();
    assert_eq!(err.reason, "Conflict");
    assert!(
        err.message.contains("events.events.k8s.io \"subject.1\""),
        "{}",
        err.message
    );

    // Strategic merge and server-side apply (which creates a missing Event).
    s.patch(
        &view_events(),
        Some("default"),
        "subject.1",
        PatchType::Strategic,
        &json!({"reportingController": "other-controller"}),
        None,
        &w,
    )
    .unwrap();
    let core = s.get(&core_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(core["reportingComponent"], "other-controller");
    let apply = WriteOptions {
        field_manager: Some("test".into()),
        ..Default::default()
    };
    let applied = s
        .patch(
            &view_events(),
            Some("default"),
            "applied.1",
            PatchType::Apply,
            &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                    "metadata": {"name": "applied.1"}, "note": "applied",
                    "regarding": {"kind": "Pod", "name": "p"}}),
            None,
            &apply,
        )
        .unwrap();
    assert!(applied.created);
    assert_eq!(applied.object["note"], "applied");
    let core = s.get(&core_events(), Some("default"), "applied.1").unwrap();
    assert_eq!(core["involvedObject"], json!({"kind": "Pod", "name": "p"}));
    let err = s
        .patch(
            &view_events(),
            Some("default"),
            "missing",
            PatchType::Merge,
            &json!({"note": "x"}),
            None,
            &w,
        )
        .unwrap_err();
    assert_eq!(err.message, "events.events.k8s.io \"missing\" not found");
}

#[test]
fn writes_through_events_k8s_io_check_its_kind_names_and_versions() {
    let s = Store::new();
    let w = WriteOptions::default();
    let created = s
        .create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap()
        .object;
    // A core Event body is not an events.k8s.io/v1 Event.
    let err = s
        .create(&view_events(), Some("default"), core_event("legacy.1"), &w)
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("events.k8s.io/v1"), "{}", err.message);
    let err = s
        .create(&view_events(), Some("default"), view_event("subject.1"), &w)
        .unwrap_err();
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(
        err.message,
        "events.events.k8s.io \"subject.1\" already exists"
    );
    assert_eq!(err.group.as_deref(), Some("events.k8s.io"));

    // Update: a stale resourceVersion conflicts; the current one replaces the Event.
    let mut stale = (*created).clone();
    s.patch(
        &core_events(),
        Some("default"),
        "subject.1",
        PatchType::Merge,
        &json!({"count": 5}),
        None,
        &w,
    )
    .unwrap();
    stale["note"] = json!("replaced");
    let err = s
        .update(
            &view_events(),
            Some("default"),
            "subject.1",
            stale.clone(),
            None,
            &w,
        )
        .unwrap_err();
    assert_eq!(err.reason, "Conflict");
    let current = s.get(&view_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(current["deprecatedCount"], 5);
    let mut fresh = (*current).clone();
    fresh["note"] = json!("replaced");
    let updated = s
        .update(
            &view_events(),
            Some("default"),
            "subject.1",
            fresh,
            None,
            &w,
        )
        .unwrap();
    assert_eq!(updated.object["note"], "replaced");
    let core = s.get(&core_events(), Some("default"), "subject.1").unwrap();
    assert_eq!(
        (core["message"].clone(), core["count"].clone()),
        (json!("replaced"), json!(5))
    );

    // Core field names sent to events.k8s.io are unknown fields there: dropped with a
    // warning, or refused under fieldValidation=Strict; never taken for the core field.
    let mut mixed = view_event("mixed.1");
    mixed["message"] = json!("not a field of events.k8s.io/v1");
    mixed["count"] = json!(99);
    let strict = WriteOptions {
        field_validation: FieldValidation::Strict,
        ..Default::default()
    };
    let err = s
        .create(&view_events(), Some("default"), mixed.clone(), &strict)
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message.contains("unknown field \"count\"")
            && err.message.contains("unknown field \"message\""),
        "{}",
        err.message
    );
    let warned = s
        .create(&view_events(), Some("default"), mixed, &w)
        .unwrap();
    assert_eq!(
        warned.warnings,
        vec!["unknown field \"count\"", "unknown field \"message\""]
    );
    let core = s.get(&core_events(), Some("default"), "mixed.1").unwrap();
    assert_eq!(
        (core["message"].clone(), core["count"].clone()),
        (json!("hello"), json!(1))
    );

    // Not found, delete and deletecollection through the view.
    let err = s.get(&view_events(), Some("default"), "nope").unwrap_err();
    assert_eq!(err.message, "events.events.k8s.io \"nope\" not found");
    assert_eq!(err.group.as_deref(), Some("events.k8s.io"));
    let gone = s
        .delete(
            &view_events(),
            Some("default"),
            "mixed.1",
            &DeleteOptions::default(),
        )
        .unwrap();
    assert!(matches!(&gone, Deleted::Gone(o) if o["note"] == "hello"));
    s.create(&core_events(), Some("default"), core_event("legacy.1"), &w)
        .unwrap();
    let deleted = s
        .delete_collection(
            &view_events(),
            Some("default"),
            &ListOptions {
                field_selector: Some("reportingController=kubectl-ramp".into()),
                ..Default::default()
            },
            &DeleteOptions::default(),
        )
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["note"], "from core");
    let left = s
        .list(&core_events(), Some("default"), &ListOptions::default())
        .unwrap();
    let names: Vec<&str> = left.items.iter().map(|o| meta_str(o, "name")).collect();
    assert_eq!(names, vec!["subject.1"]);
}

#[tokio::test]
async fn a_paged_list_is_at_its_first_pages_version_so_a_watch_from_it_misses_nothing() {
    let s = Store::new();
    let w = WriteOptions::default();
    for name in ["b", "c", "d"] {
        s.create(&cms(), Some("default"), cm(name), &w).unwrap();
    }
    let page = |token: Option<String>| {
        s.list(
            &cms(),
            Some("default"),
            &ListOptions {
                limit: Some(2),
                continue_token: token,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let page1 = page(None);
    // Created while the client pages, under a key page 1 already passed.
    s.create(&cms(), Some("default"), cm("a"), &w).unwrap();
    let page2 = page(page1.continue_token.clone());
    let listed: Vec<_> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|o| meta_str(o, "name").to_string())
        .collect();
    assert_eq!(
        listed,
        vec!["b", "c", "d"],
        "a sorts before the continue key"
    );
    assert_eq!(page2.resource_version, page1.resource_version);
    // A watch from the list's version (what every client does) brings it.
    let mut watch = s
        .watch(
            &cms(),
            Some("default"),
            &WatchOptions {
                resource_version: Some(page2.resource_version.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    let e = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (e.kind, meta_str(&e.event.object, "name")),
        (EventKind::Added, "a")
    );
}
