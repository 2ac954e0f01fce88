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
