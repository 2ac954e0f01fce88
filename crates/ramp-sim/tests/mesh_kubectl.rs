//! The classic Istio traffic-management scenarios, applied with kubectl to a
//! sim running its controllers, then routed through the live objects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_sim::TestCluster;
use ramp_sim::controllers::{ControllerConfig, Controllers};
use ramp_sim::mesh::{HttpRequest, RouteOptions, RouteQuery, RouteReport, route_in_store};
use ramp_sim::resources::GroupResource;
use ramp_sim::store::ListOptions;

struct Sim {
    cluster: TestCluster,
    _controllers: Controllers,
}

impl Sim {
    async fn start() -> Sim {
        let cluster = TestCluster::start().await.unwrap();
        cluster.load_crds(&[ramp_sim::shared_crds_dir()]).unwrap();
        let controllers = Controllers::start(cluster.store().clone(), ControllerConfig::default());
        Sim {
            cluster,
            _controllers: controllers,
        }
    }

    async fn kubectl(&self, args: &[&str], stdin: &str) {
        let mut cmd = self.cluster.kubectl();
        cmd.args(args);
        let input = stdin.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::Stdio;
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates namespace `ns`, applies `yaml` into it, and waits until every
    /// Deployment there has all its pods ready.
    async fn scenario(&self, ns: &str, yaml: &str) {
        // `kubectl apply`, not `kubectl create namespace`: the latter sends a
        // protobuf body the sim does not decode for Namespaces.
        self.kubectl(
            &["apply", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        )
        .await;
        self.kubectl(&["apply", "-n", ns, "-f", "-"], yaml).await;
        let store = self.cluster.store();
        let deployments = GroupResource::new("apps", "deployments");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let items = store
                .list(&deployments, Some(ns), &ListOptions::default())
                .unwrap()
                .items;
            let done = !items.is_empty()
                && items.iter().all(|d| {
                    d["status"]["availableReplicas"] == d["spec"]["replicas"]
                        && d["status"]["updatedReplicas"] == d["spec"]["replicas"]
                });
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Deployments in {ns} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn route(&self, ns: &str, request: HttpRequest, n: u64) -> RouteReport {
        route_in_store(
            self.cluster.store(),
            ns,
            &request,
            &RouteOptions::new(n).seed(1),
        )
        .unwrap()
    }
}

/// `name` Deployment of `app` at `version` with `replicas` pods.
fn deployment(name: &str, app: &str, version: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {app}, version: {version}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}, version: {version}}}
  template:
    metadata:
      labels: {{app: {app}, version: {version}}}
    spec:
      containers:
      - name: {app}
        image: docker.io/istio/examples-bookinfo-{app}-{version}:1.20.2
        ports:
        - containerPort: 9080
---
"#
    )
}

fn service(name: &str, selector: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {selector}
  ports:
  - name: http
    port: 9080
---
"#
    )
}

fn reviews() -> String {
    [
        service("reviews", "{app: reviews}"),
        deployment("reviews-v1", "reviews", "v1", 1),
        deployment("reviews-v2", "reviews", "v2", 1),
        deployment("reviews-v3", "reviews", "v3", 1),
    ]
    .concat()
}

const REVIEWS_DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
---
"#;

const REVIEWS_JASON_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v3
---
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_istio_scenarios_applied_with_kubectl() {
    let sim = Sim::start().await;

    // bookinfo: end-user jason -> v2, everyone else -> v3.
    sim.scenario(
        "bookinfo",
        &[reviews(), REVIEWS_DR.into(), REVIEWS_JASON_VS.into()].concat(),
    )
    .await;
    let jason = sim.route(
        "bookinfo",
        HttpRequest::new("reviews").header("end-user", "jason"),
        1000,
    );
    assert_eq!(jason.by_version, [("v2".to_string(), 1000)].into());
    assert_eq!(jason.by_pod.len(), 1);
    assert!(
        jason.by_pod.keys().all(|p| p.starts_with("reviews-v2-")),
        "{:?}",
        jason.by_pod
    );
    let others = sim.route("bookinfo", HttpRequest::new("reviews"), 1000);
    assert_eq!(others.by_version, [("v3".to_string(), 1000)].into());
    // The pod-template-hash is the one the Deployment controller put on the pods.
    let (hash, n) = others.by_pod_template_hash.iter().next().unwrap();
    assert_eq!(*n, 1000);
    let pod = others.by_pod.keys().next().unwrap();
    assert!(
        pod.starts_with(&format!("reviews-v3-{hash}-")),
        "{pod} vs {hash}"
    );

    // The same question in the serialisable form the HTTP endpoint takes.
    let q: RouteQuery = serde_json::from_value(serde_json::json!({
        "namespace": "bookinfo", "host": "reviews.bookinfo.svc.cluster.local",
        "headers": {"end-user": "jason"}, "requests": 10
    }))
    .unwrap();
    assert_eq!(q.run(sim.cluster.store()).unwrap().version("v2"), 10);

    // Two VirtualServices for host reviews: a conflict.
    sim.kubectl(
        &["apply", "-n", "bookinfo", "-f", "-"],
        &REVIEWS_JASON_VS.replace("name: reviews\nspec", "name: reviews-copy\nspec"),
    )
    .await;
    let r = sim.route("bookinfo", HttpRequest::new("reviews"), 10);
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].code, "IST0109");
    assert_eq!(r.conflicts[0].objects.len(), 2);
    assert!(
        r.conflicts[0]
            .objects
            .contains(&"VirtualService/reviews-copy".to_string())
    );

    // echo backend v0/v1: subset-only and 90/10.
    let backend = [
        service("backend", "{app: backend}"),
        deployment("backend-v0", "backend", "v0", 2),
        deployment("backend-v1", "backend", "v1", 2),
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: backend
spec:
  host: backend
  subsets:
  - {name: v0, labels: {version: v0}}
  - {name: v1, labels: {version: v1}}
---
"#
        .into(),
    ]
    .concat();
    let vs = |routes: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: backend\nspec:\n  hosts: [backend]\n  http:\n  - route:\n{routes}"
        )
    };
    sim.scenario("echo", &backend).await;
    sim.kubectl(
        &["apply", "-n", "echo", "-f", "-"],
        &vs("    - destination: {host: backend, subset: v0}\n"),
    )
    .await;
    assert_eq!(
        sim.route("echo", HttpRequest::new("backend"), 1000)
            .version("v0"),
        1000
    );
    sim.kubectl(
        &["apply", "-n", "echo", "-f", "-"],
        &vs("    - destination: {host: backend, subset: v1}\n"),
    )
    .await;
    assert_eq!(
        sim.route("echo", HttpRequest::new("backend"), 1000)
            .version("v1"),
        1000
    );
    sim.kubectl(
        &["apply", "-n", "echo", "-f", "-"],
        &vs("    - destination: {host: backend, subset: v0}\n      weight: 90\n    - destination: {host: backend, subset: v1}\n      weight: 10\n"),
    )
    .await;
    let r = sim.route("echo", HttpRequest::new("backend"), 1000);
    assert!(r.version("v0").abs_diff(900) <= 30, "{:?}", r.by_version);
    assert!(r.version("v1").abs_diff(100) <= 30, "{:?}", r.by_version);

    // httpbin v1 with everything mirrored to v2: VirtualService, then HTTPRoute.
    let httpbin = [
        service("httpbin", "{app: httpbin}"),
        service("httpbin-v1", "{app: httpbin, version: v1}"),
        service("httpbin-v2", "{app: httpbin, version: v2}"),
        deployment("httpbin-v1", "httpbin", "v1", 1),
        deployment("httpbin-v2", "httpbin", "v2", 1),
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
      weight: 100
    mirror: {host: httpbin, subset: v2}
    mirrorPercentage: {value: 100.0}
"#
        .into(),
    ]
    .concat();
    sim.scenario("mirror", &httpbin).await;
    let r = sim.route("mirror", HttpRequest::new("httpbin").path("/headers"), 1000);
    assert_eq!(r.version("v1"), 1000);
    assert_eq!(r.shadow.version("v2"), 1000);
    sim.kubectl(&["delete", "-n", "mirror", "virtualservice", "httpbin"], "")
        .await;
    sim.kubectl(
        &["apply", "-n", "mirror", "-f", "-"],
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httpbin
spec:
  parentRefs:
  - {group: "", kind: Service, name: httpbin, port: 9080}
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: httpbin-v2, port: 9080}
    backendRefs:
    - {name: httpbin-v1, port: 9080}
"#,
    )
    .await;
    let r = sim.route("mirror", HttpRequest::new("httpbin"), 1000);
    assert_eq!(r.version("v1"), 1000);
    assert_eq!(r.shadow.version("v2"), 1000);
    assert!(
        r.by_rule.keys().all(|k| k.starts_with("HTTPRoute/httpbin")),
        "{:?}",
        r.by_rule
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jason_routing_as_http_routes_applied_with_kubectl() {
    let sim = Sim::start().await;
    let objects = [
        reviews(),
        service("reviews-v1", "{app: reviews, version: v1}"),
        service("reviews-v2", "{app: reviews, version: v2}"),
        service("reviews-v3", "{app: reviews, version: v3}"),
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - matches:
    - headers:
      - name: end-user
        value: jason
    backendRefs:
    - name: reviews-v2
      port: 9080
  - backendRefs:
    - name: reviews-v3
      port: 9080
"#
        .into(),
    ]
    .concat();
    sim.scenario("gamma", &objects).await;
    assert_eq!(
        sim.route(
            "gamma",
            HttpRequest::new("reviews").header("end-user", "jason"),
            1000
        )
        .version("v2"),
        1000
    );
    assert_eq!(
        sim.route("gamma", HttpRequest::new("reviews"), 1000)
            .version("v3"),
        1000
    );

    sim.kubectl(
        &["apply", "-n", "gamma", "-f", "-"],
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews-jason2
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - matches:
    - headers:
      - {name: end-user, value: jason2}
    backendRefs:
    - {name: reviews-v1, port: 9080}
"#,
    )
    .await;
    assert_eq!(
        sim.route(
            "gamma",
            HttpRequest::new("reviews").header("end-user", "jason2"),
            1000
        )
        .version("v1"),
        1000
    );
    assert_eq!(
        sim.route(
            "gamma",
            HttpRequest::new("reviews").header("end-user", "jason"),
            1000
        )
        .version("v2"),
        1000
    );
    assert_eq!(
        sim.route("gamma", HttpRequest::new("reviews"), 1000)
            .version("v3"),
        1000
    );

    // Scaling a version to zero makes its share 503s: the mesh follows live pods.
    sim.kubectl(
        &[
            "scale",
            "-n",
            "gamma",
            "deployment/reviews-v3",
            "--replicas=0",
        ],
        "",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = sim.route("gamma", HttpRequest::new("reviews"), 100);
        if r.errors_with(503) == 100 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "v3 pods never went away: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_a_missing_namespace_is_an_error() {
    let sim = Sim::start().await;
    let e = route_in_store(
        sim.cluster.store(),
        "nope",
        &HttpRequest::new("x"),
        &RouteOptions::new(1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("namespace nope not found"), "{e}");
}
