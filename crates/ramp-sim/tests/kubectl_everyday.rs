//! kubectl 1.33 conformance, the everyday verbs: run, expose, scale, rollout, label, annotate,
//! edit, diff, describe, get -w, cascading delete, apply --prune, auth can-i, api-resources and
//! explain against the sim, with the outcomes a real cluster gives (from the Kubernetes
//! documentation of each command).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

mod kubectl_support;
use kubectl_support::*;

use serde_json::{Value, json};

/// Waits (up to 30 s) for `kubectl rollout status` to report success.
async fn rolled_out(c: &TestCluster, what: &str) {
    let out = ok(c, &["rollout", "status", what, "--timeout=30s"]).await;
    let name = what.rsplit('/').next().unwrap();
    assert!(
        out.contains(&format!("deployment \"{name}\" successfully rolled out")),
        "{out}"
    );
}

fn image_of(d: &Value) -> &str {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn run_expose_scale_and_every_rollout_subcommand() {
    let (c, _controllers) = cluster_with_controllers().await;

    // run: a bare pod labelled run=<name>.
    assert_eq!(
        ok(&c, &["run", "nginx", "--image=nginx", "--port=80"])
            .await
            .trim(),
        "pod/nginx created"
    );
    let pod = get(&c, &["pod", "nginx"]).await;
    assert_eq!(pod["metadata"]["labels"], json!({"run": "nginx"}));
    assert_eq!(pod["spec"]["containers"][0]["name"], "nginx");
    assert_eq!(
        ok(
            &c,
            &[
                "wait",
                "--for=condition=Ready",
                "pod/nginx",
                "--timeout=30s"
            ]
        )
        .await
        .trim(),
        "pod/nginx condition met"
    );
    // run --restart=Never: the pod runs to completion.
    ok(
        &c,
        &[
            "run",
            "once",
            "--image=busybox",
            "--restart=Never",
            "--",
            "date",
        ],
    )
    .await;
    assert_eq!(
        ok(
            &c,
            &[
                "wait",
                "--for=jsonpath={.status.phase}=Succeeded",
                "pod/once",
                "--timeout=30s"
            ]
        )
        .await
        .trim(),
        "pod/once condition met"
    );

    // expose: a Service selecting the pod's labels.
    assert_eq!(
        ok(
            &c,
            &[
                "expose",
                "pod",
                "nginx",
                "--port=8080",
                "--target-port=80",
                "--name=nginx-svc"
            ]
        )
        .await
        .trim(),
        "service/nginx-svc exposed"
    );
    let svc = get(&c, &["service", "nginx-svc"]).await;
    assert_eq!(svc["spec"]["selector"], json!({"run": "nginx"}));
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"port": 8080, "protocol": "TCP", "targetPort": 80}])
    );

    create(
        &c,
        &["deployment", "web", "--image=nginx:1.26"],
        "deployment.apps/web created",
    )
    .await;
    rolled_out(&c, "deployment/web").await;
    assert_eq!(
        ok(
            &c,
            &[
                "expose",
                "deployment",
                "web",
                "--port=80",
                "--type=NodePort"
            ]
        )
        .await
        .trim(),
        "service/web exposed"
    );
    let svc = get(&c, &["service", "web"]).await;
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(svc["spec"]["type"], "NodePort");

    // scale
    assert_eq!(
        ok(&c, &["scale", "deployment/web", "--replicas=3"])
            .await
            .trim(),
        "deployment.apps/web scaled"
    );
    rolled_out(&c, "deployment/web").await;
    let d = get(&c, &["deployment", "web"]).await;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["status"]["readyReplicas"], 3);
    // --current-replicas is a precondition.
    let o = run(
        &c,
        &[
            "scale",
            "deployment/web",
            "--current-replicas=2",
            "--replicas=1",
        ],
        None,
    )
    .await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains("Expected replicas to be 2, was 3"),
        "{}",
        o.stderr
    );

    // A new image is revision 2; history lists both.
    assert_eq!(
        ok(&c, &["set", "image", "deployment/web", "nginx=nginx:1.27"])
            .await
            .trim(),
        "deployment.apps/web image updated"
    );
    rolled_out(&c, "deployment/web").await;
    let history = ok(&c, &["rollout", "history", "deployment/web"]).await;
    let rows: Vec<Vec<&str>> = history
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["deployment.apps/web"]);
    assert_eq!(rows[1], ["REVISION", "CHANGE-CAUSE"]);
    assert_eq!(rows[2], ["1", "<none>"]);
    assert_eq!(rows[3], ["2", "<none>"]);
    let rev1 = ok(
        &c,
        &["rollout", "history", "deployment/web", "--revision=1"],
    )
    .await;
    assert!(
        rev1.contains("Image:\tnginx:1.26") || rev1.contains("Image:      nginx:1.26"),
        "{rev1}"
    );

    // undo goes back to revision 1's template (which becomes revision 3).
    assert_eq!(
        ok(&c, &["rollout", "undo", "deployment/web"]).await.trim(),
        "deployment.apps/web rolled back"
    );
    rolled_out(&c, "deployment/web").await;
    let d = get(&c, &["deployment", "web"]).await;
    assert_eq!(image_of(&d), "nginx:1.26");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // restart stamps the template, which rolls the pods.
    assert_eq!(
        ok(&c, &["rollout", "restart", "deployment/web"])
            .await
            .trim(),
        "deployment.apps/web restarted"
    );
    let d = get(&c, &["deployment", "web"]).await;
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{d}"
    );
    rolled_out(&c, "deployment/web").await;

    // pause / resume
    assert_eq!(
        ok(&c, &["rollout", "pause", "deployment/web"]).await.trim(),
        "deployment.apps/web paused"
    );
    assert_eq!(
        get(&c, &["deployment", "web"]).await["spec"]["paused"],
        true
    );
    let o = run(&c, &["rollout", "pause", "deployment/web"], None).await;
    assert!(!o.ok);
    assert!(
        o.stderr
            .contains(r#"deployments.apps "web" is already paused"#),
        "{}",
        o.stderr
    );
    assert_eq!(
        ok(&c, &["rollout", "resume", "deployment/web"])
            .await
            .trim(),
        "deployment.apps/web resumed"
    );
    let d = get(&c, &["deployment", "web"]).await;
    assert!(d["spec"].get("paused").is_none_or(|p| p == false), "{d}");
    c.shutdown().await;
}

/// A `kubectl describe` line `<field>   <value...>` (aligned with any number of spaces).
fn described(text: &str, field: &str, value: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(field).is_some_and(|rest| {
            rest.trim_start().starts_with(value) && (value.is_empty() || rest.starts_with(' '))
        })
    })
}

#[tokio::test]
async fn label_annotate_edit_diff_and_describe() {
    let (c, _controllers) = cluster_with_controllers().await;
    create(
        &c,
        &["deployment", "web", "--image=nginx", "--replicas=2"],
        "deployment.apps/web created",
    )
    .await;

    assert_eq!(
        ok(&c, &["label", "deployment", "web", "tier=frontend"])
            .await
            .trim(),
        "deployment.apps/web labeled"
    );
    let o = run(&c, &["label", "deployment", "web", "tier=backend"], None).await;
    assert!(!o.ok);
    assert!(
        o.stderr
            .contains("'tier' already has a value (frontend), and --overwrite is false"),
        "{}",
        o.stderr
    );
    ok(
        &c,
        &["label", "deployment", "web", "tier=backend", "--overwrite"],
    )
    .await;
    assert_eq!(
        get(&c, &["deployment", "web"]).await["metadata"]["labels"]["tier"],
        "backend"
    );
    assert_eq!(
        ok(&c, &["label", "deployment", "web", "tier-"])
            .await
            .trim(),
        "deployment.apps/web unlabeled"
    );
    assert!(
        get(&c, &["deployment", "web"]).await["metadata"]["labels"]
            .get("tier")
            .is_none()
    );
    assert_eq!(
        ok(&c, &["annotate", "deployment", "web", "owner=team-a"])
            .await
            .trim(),
        "deployment.apps/web annotated"
    );
    assert_eq!(
        get(&c, &["deployment", "web"]).await["metadata"]["annotations"]["owner"],
        "team-a"
    );
    // A label selector across objects.
    ok(&c, &["label", "pods", "-l", "app=web", "checked=yes"]).await;
    let pods = get(&c, &["pods", "-l", "checked=yes"]).await;
    assert_eq!(pods["items"].as_array().unwrap().len(), 2, "{pods}");

    // edit with a scripted editor: the file kubectl opens is rewritten.
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^  replicas: 2$/  replicas: 4/' \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = c.kubectl();
    cmd.args(["edit", "deployment", "web"])
        .env("KUBE_EDITOR", &editor);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "deployment.apps/web edited"
    );
    assert_eq!(get(&c, &["deployment", "web"]).await["spec"]["replicas"], 4);

    // diff: exit 1 with a unified diff when the manifest differs, 0 and nothing when not.
    let manifest = |replicas: u32| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{replicas: \"{replicas}\"}}\n"
        )
    };
    let o = run(&c, &["apply", "-f", "-"], Some(&manifest(1))).await;
    assert!(o.ok, "{}", o.stderr);
    let same = run(&c, &["diff", "-f", "-"], Some(&manifest(1))).await;
    assert!(
        same.ok,
        "diff of an unchanged object: {}{}",
        same.stdout, same.stderr
    );
    assert_eq!(same.stdout, "");
    let changed = c
        .kubectl_output(&["diff", "-f", "-"], Some(&manifest(5)))
        .await
        .unwrap();
    assert_eq!(
        changed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let text = String::from_utf8_lossy(&changed.stdout);
    assert!(text.contains("-  replicas: \"1\""), "{text}");
    assert!(text.contains("+  replicas: \"5\""), "{text}");
    // diff is a dry run: nothing changed.
    assert_eq!(
        get(&c, &["configmap", "settings"]).await["data"]["replicas"],
        "1"
    );

    // describe
    let d = ok(&c, &["describe", "deployment", "web"]).await;
    for (field, value) in [
        ("Name:", "web"),
        ("Namespace:", "default"),
        ("Selector:", "app=web"),
        ("StrategyType:", "RollingUpdate"),
        ("Annotations:", "deployment.kubernetes.io/revision: 1"),
        ("Pod Template:", ""),
    ] {
        assert!(described(&d, field, value), "no {field} {value} in:\n{d}");
    }
    assert!(
        described(&d, "Replicas:", "4 desired | 4 updated | 4 total"),
        "{d}"
    );
    let pods = get(&c, &["pods", "-l", "app=web"]).await;
    let name = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        &c,
        &[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=30s",
        ],
    )
    .await;
    let p = ok(&c, &["describe", "pod", &name]).await;
    assert!(described(&p, "Status:", "Running"), "{p}");
    assert!(
        p.lines()
            .any(|l| l.starts_with("Controlled By:") && l.contains("ReplicaSet/web-")),
        "{p}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn get_watch_and_foreground_cascading_delete() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (c, _controllers) = cluster_with_controllers().await;

    // get -w: the current objects, then each change as it happens.
    create(
        &c,
        &["configmap", "first", "--from-literal=a=1"],
        "configmap/first created",
    )
    .await;
    let mut cmd = tokio::process::Command::from(c.kubectl());
    cmd.args(["get", "configmaps", "-w", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // EVENT NAME DATA AGE: the event and the name.
    let mut next = async || {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("a watch line within 20 s")
            .unwrap()
            .unwrap();
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(next().await, "EVENT NAME");
    // The list before the watch (the sim has no kube-root-ca.crt ConfigMaps), then the changes.
    assert_eq!(next().await, "ADDED first");
    create(
        &c,
        &["configmap", "second", "--from-literal=b=2"],
        "configmap/second created",
    )
    .await;
    assert_eq!(next().await, "ADDED second");
    ok(&c, &["label", "configmap", "second", "x=y"]).await;
    assert_eq!(next().await, "MODIFIED second");
    ok(&c, &["delete", "configmap", "second"]).await;
    assert_eq!(next().await, "DELETED second");
    drop(child);

    // delete --cascade=foreground: kubectl returns once the Deployment, its ReplicaSet and
    // its pods are gone.
    create(
        &c,
        &["deployment", "web", "--image=nginx", "--replicas=2"],
        "deployment.apps/web created",
    )
    .await;
    rolled_out(&c, "deployment/web").await;
    assert_eq!(
        get(&c, &["rs", "-l", "app=web"]).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ok(&c, &["delete", "deployment", "web", "--cascade=foreground"])
            .await
            .trim(),
        r#"deployment.apps "web" deleted"#
    );
    assert!(
        get(&c, &["rs", "-l", "app=web"]).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        get(&c, &["pods", "-l", "app=web"]).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let o = run(&c, &["get", "deployment", "web"], None).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(r#"deployments.apps "web" not found"#),
        "{}",
        o.stderr
    );
    // --cascade=orphan keeps the ReplicaSet, without its owner.
    create(
        &c,
        &["deployment", "keep", "--image=nginx"],
        "deployment.apps/keep created",
    )
    .await;
    rolled_out(&c, "deployment/keep").await;
    ok(&c, &["delete", "deployment", "keep", "--cascade=orphan"]).await;
    let rs = get(&c, &["rs", "-l", "app=keep"]).await;
    let items = rs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0]["metadata"]
            .get("ownerReferences")
            .is_none_or(|o| o == &json!([])),
        "{rs}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn apply_prune_removes_what_left_the_manifest() {
    let c = TestCluster::start().await.unwrap();
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {app: prune-demo}}\ndata: {k: v}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {app: prune-demo}}\ndata: {k: v}\n";
    let o = run(
        &c,
        &["apply", "--prune", "-l", "app=prune-demo", "-f", "-"],
        Some(both),
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "configmap/a created\nconfigmap/b created");
    // Not applied with kubectl: not pruned, even with the label.
    create(&c, &["configmap", "other"], "configmap/other created").await;
    ok(&c, &["label", "configmap", "other", "app=prune-demo"]).await;
    let only_a = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {app: prune-demo}}\ndata: {k: v}\n";
    let o = run(
        &c,
        &["apply", "--prune", "-l", "app=prune-demo", "-f", "-"],
        Some(only_a),
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "configmap/a unchanged\nconfigmap/b pruned");
    let names: Vec<String> = get(&c, &["configmaps"]).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "other"]);
    c.shutdown().await;
}

#[tokio::test]
async fn auth_can_i_api_resources_and_explain() {
    let c = TestCluster::start().await.unwrap();
    assert_eq!(
        ok(&c, &["auth", "can-i", "create", "deployments"])
            .await
            .trim(),
        "yes"
    );
    assert_eq!(
        ok(
            &c,
            &["auth", "can-i", "delete", "jobs.batch", "-n", "kube-system"]
        )
        .await
        .trim(),
        "yes"
    );

    let table = ok(&c, &["api-resources"]).await;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for want in [
        vec!["jobs", "batch/v1", "true", "Job"],
        vec!["cronjobs", "cj", "batch/v1", "true", "CronJob"],
        vec![
            "priorityclasses",
            "pc",
            "scheduling.k8s.io/v1",
            "false",
            "PriorityClass",
        ],
        vec!["resourcequotas", "quota", "v1", "true", "ResourceQuota"],
        vec!["deployments", "deploy", "apps/v1", "true", "Deployment"],
        vec!["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
    ] {
        assert!(rows.contains(&want), "no row {want:?} in:\n{table}");
    }
    let batch = ok(&c, &["api-resources", "--api-group=batch", "-o", "name"]).await;
    assert_eq!(batch.trim(), "cronjobs.batch\njobs.batch");

    let explained = ok(&c, &["explain", "deployment.spec.replicas"]).await;
    assert!(explained.contains("GROUP:      apps"), "{explained}");
    assert!(explained.contains("KIND:       Deployment"), "{explained}");
    assert!(
        explained.contains("FIELD: replicas <integer>"),
        "{explained}"
    );
    assert!(explained.contains("Number of desired pods"), "{explained}");
    let explained = ok(&c, &["explain", "jobs.spec.backoffLimit"]).await;
    assert!(
        explained.contains("FIELD: backoffLimit <integer>"),
        "{explained}"
    );
    let o = run(&c, &["explain", "deployment.spec.nope"], None).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(r#"field "nope" does not exist"#),
        "{}",
        o.stderr
    );
    c.shutdown().await;
}

#[tokio::test]
async fn apply_server_side_tracks_field_owners_and_reports_conflicts() {
    let c = TestCluster::start().await.unwrap();
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {data}\n")
    };
    let apply = async |manager: &str, data: &str, extra: &[&str]| {
        let flag = format!("--field-manager={manager}");
        let mut args = vec!["apply", "--server-side", flag.as_str(), "-f", "-"];
        args.extend_from_slice(extra);
        run(&c, &args, Some(&cm(data))).await
    };
    let o = apply("alice", "{color: blue, size: L}", &[]).await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "configmap/settings serverside-applied");

    // bob changing alice's field: a conflict naming her and the field; nothing changes.
    let o = apply("bob", "{color: red}", &[]).await;
    assert!(!o.ok);
    assert!(
        o.stderr
            .contains(r#"Apply failed with 1 conflict: conflict with "alice": .data.color"#),
        "{}",
        o.stderr
    );
    assert_eq!(
        get(&c, &["configmap", "settings"]).await["data"]["color"],
        "blue"
    );
    // Setting the same value is shared ownership, not a conflict.
    let o = apply("bob", "{color: blue}", &[]).await;
    assert!(o.ok, "{}", o.stderr);
    // Forced, bob takes the field over.
    let o = apply("bob", "{color: red}", &["--force-conflicts"]).await;
    assert!(o.ok, "{}", o.stderr);
    let obj = get(&c, &["configmap", "settings", "--show-managed-fields"]).await;
    assert_eq!(obj["data"], json!({"color": "red", "size": "L"}));
    let owners: Vec<(String, String, Value)> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
                e["fieldsV1"].clone(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [
            (
                "alice".into(),
                "Apply".into(),
                json!({"f:data": {"f:size": {}}})
            ),
            (
                "bob".into(),
                "Apply".into(),
                json!({"f:data": {"f:color": {}}})
            )
        ]
    );
    // managedFields are hidden from -o json unless asked for.
    assert!(
        get(&c, &["configmap", "settings"]).await["metadata"]
            .get("managedFields")
            .is_none()
    );

    // alice drops size from her configuration: it is removed. color is bob's: it stays.
    let o = apply("alice", "{}", &[]).await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(
        get(&c, &["configmap", "settings"]).await["data"],
        json!({"color": "red"})
    );

    // A field changed by a plain update belongs to that writer: re-applying the old value
    // conflicts with it.
    let o = apply("bob", "{color: red, mode: auto}", &[]).await;
    assert!(o.ok, "{}", o.stderr);
    ok(
        &c,
        &[
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"data":{"mode":"manual"}}"#,
        ],
    )
    .await;
    let o = apply("bob", "{color: red, mode: auto}", &[]).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.mode"#
        ),
        "{}",
        o.stderr
    );
    // The creator owns what it created: applying another image to a Deployment made with
    // `kubectl create` conflicts with "kubectl-create" (the upgrade path from imperative
    // commands that the server-side apply documentation describes).
    create(
        &c,
        &["deployment", "nginx", "--image=nginx"],
        "deployment.apps/nginx created",
    )
    .await;
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nginx, labels: {app: nginx}}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: nginx}}\n  template:\n    metadata: {labels: {app: nginx}}\n    spec:\n      containers: [{name: nginx, image: \"nginx:1.27\"}]\n";
    let o = run(&c, &["apply", "--server-side", "-f", "-"], Some(manifest)).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: .spec.template.spec.containers[name="nginx"].image"#),
        "{}",
        o.stderr
    );
    let o = run(
        &c,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(manifest),
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    let d = get(&c, &["deployment", "nginx"]).await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    c.shutdown().await;
}
