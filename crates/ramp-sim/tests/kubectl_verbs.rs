//! kubectl 1.33 conformance: every `kubectl create` generator, and the everyday verbs, against
//! the sim. The expected outcomes are what a real cluster (kube-apiserver + controllers) gives,
//! written from the Kubernetes documentation: the object each generator makes, the line kubectl
//! prints, and the errors a real server answers with.
//!
//! kubectl sends the objects of its generators as protobuf; these tests are what proves the
//! sim's protobuf decoding (`src/proto.rs`) against the real client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use serde_json::{Value, json};

mod kubectl_support;
use kubectl_support::*;

#[tokio::test]
async fn create_generators_for_workloads_services_and_rbac() {
    let c = TestCluster::start().await.unwrap();

    create(
        &c,
        &[
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
            "--port=80",
        ],
        "deployment.apps/web created",
    )
    .await;
    let d = get(&c, &["deployment", "web"]).await;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web"})
    );
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx");
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    // API server defaults on a Deployment created without them.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["metadata"]["generation"], 1);

    // A pointer field's zero survives protobuf (a Deployment scaled to zero stays at zero).
    create(
        &c,
        &["deployment", "idle", "--image=nginx", "--replicas=0"],
        "deployment.apps/idle created",
    )
    .await;
    assert_eq!(
        get(&c, &["deployment", "idle"]).await["spec"]["replicas"],
        0
    );

    create(
        &c,
        &["service", "clusterip", "my-cs", "--tcp=5678:8080"],
        "service/my-cs created",
    )
    .await;
    let s = get(&c, &["service", "my-cs"]).await;
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["selector"], json!({"app": "my-cs"}));
    assert_eq!(
        s["spec"]["ports"],
        json!([{"name": "5678-8080", "port": 5678, "protocol": "TCP", "targetPort": 8080}])
    );
    assert!(
        s["spec"]["clusterIP"].as_str().unwrap().contains('.'),
        "{s}"
    );

    create(
        &c,
        &["service", "clusterip", "headless", "--clusterip=None"],
        "service/headless created",
    )
    .await;
    let s = get(&c, &["service", "headless"]).await;
    assert_eq!(s["spec"]["clusterIP"], "None");

    create(
        &c,
        &["service", "nodeport", "my-np", "--tcp=5678:8080"],
        "service/my-np created",
    )
    .await;
    let s = get(&c, &["service", "my-np"]).await;
    assert_eq!(s["spec"]["type"], "NodePort");
    let node_port = s["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{s}");

    create(
        &c,
        &["service", "loadbalancer", "my-lb", "--tcp=80:8080"],
        "service/my-lb created",
    )
    .await;
    let s = get(&c, &["service", "my-lb"]).await;
    assert_eq!(s["spec"]["type"], "LoadBalancer");

    create(
        &c,
        &[
            "service",
            "externalname",
            "my-en",
            "--external-name=bar.com",
        ],
        "service/my-en created",
    )
    .await;
    let s = get(&c, &["service", "my-en"]).await;
    assert_eq!(s["spec"]["type"], "ExternalName");
    assert_eq!(s["spec"]["externalName"], "bar.com");
    assert!(s["spec"].get("clusterIP").is_none(), "{s}");

    create(
        &c,
        &["serviceaccount", "builder"],
        "serviceaccount/builder created",
    )
    .await;
    let sa = get(&c, &["serviceaccount", "builder"]).await;
    assert_eq!(sa["metadata"]["namespace"], "default");

    create(
        &c,
        &[
            "role",
            "pod-reader",
            "--verb=get",
            "--verb=list",
            "--resource=pods",
            "--resource=deployments.apps",
        ],
        "role.rbac.authorization.k8s.io/pod-reader created",
    )
    .await;
    let r = get(&c, &["role", "pod-reader"]).await;
    assert_eq!(
        r["rules"],
        json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}
        ])
    );

    create(
        &c,
        &[
            "rolebinding",
            "read-pods",
            "--role=pod-reader",
            "--serviceaccount=default:builder",
            "--user=alice",
        ],
        "rolebinding.rbac.authorization.k8s.io/read-pods created",
    )
    .await;
    let rb = get(&c, &["rolebinding", "read-pods"]).await;
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"})
    );
    assert_eq!(
        rb["subjects"],
        json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "builder", "namespace": "default"}
        ])
    );

    create(
        &c,
        &[
            "clusterrole",
            "log-reader",
            "--verb=get",
            "--non-resource-url=/logs/*",
        ],
        "clusterrole.rbac.authorization.k8s.io/log-reader created",
    )
    .await;
    let cr = get(&c, &["clusterrole", "log-reader"]).await;
    assert_eq!(
        cr["rules"],
        json!([{"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}])
    );
    assert!(cr["metadata"].get("namespace").is_none(), "{cr}");

    create(
        &c,
        &[
            "clusterrolebinding",
            "log-readers",
            "--clusterrole=log-reader",
            "--group=devs",
        ],
        "clusterrolebinding.rbac.authorization.k8s.io/log-readers created",
    )
    .await;
    let crb = get(&c, &["clusterrolebinding", "log-readers"]).await;
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    assert_eq!(
        crb["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}])
    );

    create(
        &c,
        &[
            "ingress",
            "simple",
            "--class=nginx",
            "--rule=foo.com/bar=svc1:8080,tls=my-cert",
            "--annotation=team=web",
        ],
        "ingress.networking.k8s.io/simple created",
    )
    .await;
    let ing = get(&c, &["ingress", "simple"]).await;
    assert_eq!(ing["metadata"]["annotations"], json!({"team": "web"}));
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ing["spec"]["rules"],
        json!([{"host": "foo.com", "http": {"paths": [{
            "path": "/bar", "pathType": "Exact",
            "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}
        }]}}])
    );
    assert_eq!(
        ing["spec"]["tls"],
        json!([{"hosts": ["foo.com"], "secretName": "my-cert"}])
    );

    create(
        &c,
        &[
            "poddisruptionbudget",
            "web-pdb",
            "--selector=app=web",
            "--min-available=50%",
        ],
        "poddisruptionbudget.policy/web-pdb created",
    )
    .await;
    let pdb = get(&c, &["pdb", "web-pdb"]).await;
    assert_eq!(pdb["spec"]["minAvailable"], "50%");
    assert_eq!(
        pdb["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );

    // Creating the same object again is a conflict with kube-apiserver's message.
    let again = run(&c, &["create", "deployment", "web", "--image=nginx"], None).await;
    assert!(!again.ok);
    assert!(
        again
            .stderr
            .contains(r#"deployments.apps "web" already exists"#),
        "{}",
        again.stderr
    );
    c.shutdown().await;
}

#[tokio::test]
async fn create_generators_for_config_secrets_and_namespaces() {
    let c = TestCluster::start().await.unwrap();
    create(&c, &["namespace", "team-a"], "namespace/team-a created").await;
    let ns = get(&c, &["namespace", "team-a"]).await;
    assert_eq!(ns["status"]["phase"], "Active");

    create(
        &c,
        &[
            "configmap",
            "settings",
            "-n",
            "team-a",
            "--from-literal=color=blue",
            "--from-literal=size=L",
        ],
        "configmap/settings created",
    )
    .await;
    let cm = get(&c, &["configmap", "settings", "-n", "team-a"]).await;
    assert_eq!(cm["data"], json!({"color": "blue", "size": "L"}));

    create(
        &c,
        &["secret", "generic", "creds", "--from-literal=user=admin"],
        "secret/creds created",
    )
    .await;
    let s = get(&c, &["secret", "creds"]).await;
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"user": "YWRtaW4="}));

    create(
        &c,
        &[
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=registry.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
        "secret/regcred created",
    )
    .await;
    let s = get(&c, &["secret", "regcred"]).await;
    assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
    assert!(s["data"][".dockerconfigjson"].is_string(), "{s}");

    let cert = rcgen::generate_simple_self_signed(vec!["web.example.com".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let cert_arg = format!("--cert={}", crt.display());
    let key_arg = format!("--key={}", key.display());
    create(
        &c,
        &["secret", "tls", "web-tls", &cert_arg, &key_arg],
        "secret/web-tls created",
    )
    .await;
    let s = get(&c, &["secret", "web-tls"]).await;
    assert_eq!(s["type"], "kubernetes.io/tls");
    let keys: Vec<&String> = s["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["tls.crt", "tls.key"]);
    c.shutdown().await;
}

#[tokio::test]
async fn create_generators_for_jobs_cronjobs_quotas_priority_classes_and_tokens() {
    let (c, _controllers) = cluster_with_controllers().await;

    create(
        &c,
        &[
            "job",
            "pi",
            "--image=perl:5.34",
            "--",
            "perl",
            "-e",
            "print 1",
        ],
        "job.batch/pi created",
    )
    .await;
    let job = get(&c, &["job", "pi"]).await;
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    // The server generates the selector from the uid and labels the template.
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &job["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["job-name"], "pi");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["perl", "-e", "print 1"])
    );

    let waited = ok(
        &c,
        &[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=30s",
        ],
    )
    .await;
    assert_eq!(waited.trim(), "job.batch/pi condition met");
    let job = get(&c, &["job", "pi"]).await;
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"]["completionTime"].is_string(), "{job}");
    let pods = get(&c, &["pods", "-l", "job-name=pi"]).await;
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pods}");
    assert_eq!(items[0]["status"]["phase"], "Succeeded");
    assert_eq!(items[0]["metadata"]["ownerReferences"][0]["kind"], "Job");
    // The table kubectl prints.
    let table = ok(&c, &["get", "job", "pi"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["pi", "Complete", "1/1"]);

    // A Job whose pods fail: Failed once more than backoffLimit pods failed.
    let failing = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 1
  template:
    metadata:
      annotations: {sim.ramp.dev/exit-code: "1"}
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
"#;
    let o = run(&c, &["apply", "-f", "-"], Some(failing)).await;
    assert!(o.ok, "{}", o.stderr);
    let waited = ok(
        &c,
        &[
            "wait",
            "--for=condition=failed",
            "job/flaky",
            "--timeout=30s",
        ],
    )
    .await;
    assert_eq!(waited.trim(), "job.batch/flaky condition met");
    let job = get(&c, &["job", "flaky"]).await;
    assert_eq!(job["status"]["failed"], 2);
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");

    // A Job's pods may not restart Always.
    let bad = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  template:
    spec:
      containers: [{name: main, image: busybox}]
"#;
    let o = run(&c, &["apply", "-f", "-"], Some(bad)).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(r#"The Job "bad" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#),
        "{}",
        o.stderr
    );

    create(
        &c,
        &[
            "cronjob",
            "hello",
            "--image=busybox",
            "--schedule=*/1 * * * *",
            "--",
            "date",
        ],
        "cronjob.batch/hello created",
    )
    .await;
    let cj = get(&c, &["cronjob", "hello"]).await;
    assert_eq!(cj["spec"]["schedule"], "*/1 * * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
        "OnFailure"
    );
    let o = run(
        &c,
        &[
            "create",
            "cronjob",
            "bad",
            "--image=busybox",
            "--schedule=61 * * * *",
        ],
        None,
    )
    .await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(
            r#"CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *""#
        ),
        "{}",
        o.stderr
    );
    // A Job from the CronJob's template, owned by it, annotated as manually instantiated.
    create(
        &c,
        &["job", "hello-now", "--from=cronjob/hello"],
        "job.batch/hello-now created",
    )
    .await;
    let job = get(&c, &["job", "hello-now"]).await;
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    ok(
        &c,
        &[
            "wait",
            "--for=condition=complete",
            "job/hello-now",
            "--timeout=30s",
        ],
    )
    .await;

    create(
        &c,
        &["quota", "compute", "--hard=cpu=1,memory=1Gi,pods=2"],
        "resourcequota/compute created",
    )
    .await;
    let q = get(&c, &["quota", "compute"]).await;
    assert_eq!(
        q["spec"]["hard"],
        json!({"cpu": "1", "memory": "1Gi", "pods": "2"})
    );

    create(
        &c,
        &[
            "priorityclass",
            "high",
            "--value=1000",
            "--description=high priority",
        ],
        "priorityclass.scheduling.k8s.io/high created",
    )
    .await;
    let pc = get(&c, &["priorityclass", "high"]).await;
    assert_eq!(pc["value"], 1000);
    assert_eq!(pc["description"], "high priority");
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(pc["globalDefault"], false);

    create(&c, &["serviceaccount", "ci"], "serviceaccount/ci created").await;
    let token = ok(&c, &["create", "token", "ci", "--duration=2h"]).await;
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:ci");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 7200);
    let o = run(&c, &["create", "token", "nobody"], None).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(r#"serviceaccounts "nobody" not found"#),
        "{}",
        o.stderr
    );
    c.shutdown().await;
}
