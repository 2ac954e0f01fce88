//! Mesh telemetry through a real Prometheus (issue #16, part 1): the sim's
//! background load follows a VirtualService splitting 80/20, pods answer as
//! their annotations say, and Prometheus — scraping the sim's `/metrics` every
//! second — sees Istio's standard metrics: the split by workload, the canary's
//! error rate and latency, mirrored copies on the mirror target, the gateway as
//! the source, and a counter that stops when the load stops. The harness's
//! Prometheus is stopped and restarted on the same port and data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ramp_e2e::prometheus::{Prometheus, scrape_target_of};
use ramp_e2e::{Env, bin};

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {containers: [{name: app, image: "web:1"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: web-canary}}
  template:
    metadata:
      labels: {app: web-canary, version: v2}
      annotations: {sim.ramp.dev/error-rate: "0.3", sim.ramp.dev/latency-ms: "900"}
    spec: {containers: [{name: app, image: "web:2"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary}
spec: {selector: {app: web-canary}, ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route:
    - {destination: {host: web}, weight: 80}
    - {destination: {host: web-canary}, weight: 20}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop, version: v1}}
    spec: {containers: [{name: app, image: "shop:1"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop-shadow}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop-shadow}}
  template:
    metadata: {labels: {app: shop-shadow}}
    spec: {containers: [{name: app, image: "shop:2"}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec: {selector: {app: shop}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop-shadow}
spec: {selector: {app: shop-shadow}, ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  gateways: [shop-gateway]
  http:
  - route:
    - destination: {host: shop}
    mirror: {host: shop-shadow}
    mirrorPercentage: {value: 50}
"#;

fn sim(env: &Env, args: &[&str]) -> Output {
    Command::new(bin("ramp-sim"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .output()
        .expect("run ramp-sim")
}

fn sim_ok(env: &Env, args: &[&str]) -> String {
    let out = sim(env, args);
    assert!(
        out.status.success(),
        "ramp-sim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A query's single value, 0 for no data.
fn value(prom: &Prometheus, promql: &str) -> f64 {
    prom.value(promql)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or(0.0)
}

#[test]
fn istio_metrics_from_background_load_reach_a_real_prometheus() {
    let env = Env::start("telemetry");
    let ns = env.ns.clone();
    env.apply(MANIFESTS);
    env.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment",
        "--all",
        "--timeout=60s",
    ])
    .ok();
    let prom = Prometheus::start(&scrape_target_of(&env.kubeconfig).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));

    // Bad input is refused, naming the field; nothing starts.
    let bad = sim(
        &env,
        &["load", "start", "-n", &ns, "--host", "web", "--rps", "-5"],
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("invalid load spec: rps"), "{stderr}");

    let web = sim_ok(
        &env,
        &["load", "start", "-n", &ns, "--host", "web", "--rps", "200"],
    );
    let shop = sim_ok(
        &env,
        &[
            "load",
            "start",
            "-n",
            &ns,
            "--host",
            "shop",
            "--gateway",
            "shop-gateway",
            "--rps",
            "50",
        ],
    );
    assert!(web.starts_with("load-") && shop.starts_with("load-") && web != shop);

    let dest = format!("reporter=\"destination\",destination_workload_namespace=\"{ns}\"");
    let total = |workload: &str, extra: &str| {
        value(
            &prom,
            &format!(
                "sum(istio_requests_total{{{dest},destination_workload=\"{workload}\"{extra}}})"
            ),
        )
    };
    // Enough canary answers for the shares to be tight (about 40/s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while total("web-canary", "") < 300.0 {
        assert!(
            Instant::now() < deadline,
            "Prometheus saw too few canary requests: {}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The 80/20 split by destination_workload.
    let shares = prom
        .vector(&format!(
            "sum by (destination_workload) (istio_requests_total{{{dest},destination_workload=~\"web|web-canary\"}}) \
             / scalar(sum(istio_requests_total{{{dest},destination_workload=~\"web|web-canary\"}}))"
        ))
        .unwrap();
    let share = |w: &str| {
        shares
            .iter()
            .find(|(l, _)| l["destination_workload"] == w)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {w} in {shares:?}"))
    };
    assert!((share("web") - 0.8).abs() < 0.04, "{shares:?}");
    assert!((share("web-canary") - 0.2).abs() < 0.04, "{shares:?}");

    // error-rate 0.3 on the canary's template: about 30% 5xx; none on the stable.
    let canary_5xx = total("web-canary", ",response_code=~\"5..\"") / total("web-canary", "");
    assert!(
        (canary_5xx - 0.3).abs() < 0.08,
        "canary 5xx share {canary_5xx}"
    );
    assert_eq!(total("web", ",response_code=~\"5..\""), 0.0);
    // Labels as Istio reports them: the Deployment, its version, the Service.
    let canary_series = prom
        .vector(&format!(
            "istio_requests_total{{{dest},destination_workload=\"web-canary\",response_code=\"200\"}}"
        ))
        .unwrap();
    assert_eq!(canary_series.len(), 1, "{canary_series:?}");
    let labels = &canary_series[0].0;
    assert_eq!(labels["destination_version"], "v2", "{labels:?}");
    assert_eq!(
        labels["destination_service_name"], "web-canary",
        "{labels:?}"
    );
    assert_eq!(labels["destination_service_namespace"], ns.as_str());
    assert_eq!(labels["source_workload"], "unknown", "{labels:?}");

    // latency-ms 900: p99 above 500 ms; the stable (10 ms mean) far below.
    let p99 = |w: &str| {
        value(
            &prom,
            &format!(
                "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{dest},destination_workload=\"{w}\"}}[30s])))"
            ),
        )
    };
    let canary_p99 = p99("web-canary");
    assert!(canary_p99 > 500.0, "canary p99 {canary_p99}");
    let stable_p99 = p99("web");
    assert!(stable_p99 < 100.0, "stable p99 {stable_p99}");

    // The mirror: half of shop's requests copied to shop-shadow, counted on it
    // by its own proxy; the gateway is the source.
    let shop_total = total("shop", ",source_workload=\"shop-gateway\"");
    let shadow_total = total("shop-shadow", "");
    assert!(shop_total > 100.0, "shop {shop_total}");
    let ratio = shadow_total / shop_total;
    assert!(
        (ratio - 0.5).abs() < 0.12,
        "mirrored {shadow_total} of {shop_total}"
    );
    eprintln!(
        "measured: web {:.3} / canary {:.3} of requests, canary 5xx {canary_5xx:.3}, \
         p99 canary {canary_p99:.0} ms / stable {stable_p99:.1} ms, mirrored {ratio:.3}",
        share("web"),
        share("web-canary")
    );
    let shadow_version = prom
        .vector(&format!(
            "istio_requests_total{{{dest},destination_workload=\"shop-shadow\"}}"
        ))
        .unwrap();
    assert_eq!(shadow_version[0].0["destination_version"], "unknown");

    // The streams with what they sent.
    let list: serde_json::Value =
        serde_json::from_str(&sim_ok(&env, &["load", "list", "-o", "json"])).unwrap();
    let streams = list["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{list}");
    assert!(
        streams.iter().all(|s| s["sent"].as_u64() > Some(0)),
        "{list}"
    );

    // Stopping the web stream stops its counters; the shop stream goes on.
    let unknown = sim(&env, &["load", "stop", "load-999"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("load stream \"load-999\" not found"),
        "{stderr}"
    );
    let out = sim_ok(&env, &["load", "stop", &web]);
    assert!(out.contains(&format!("stopped {web}")), "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&sim_ok(&env, &["load", "list", "-o", "json"])).unwrap();
    assert_eq!(list["streams"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["streams"][0]["id"], shop.as_str());
    std::thread::sleep(Duration::from_millis(1500));
    let web_stopped = total("web", "") + total("web-canary", "");
    let shop_before = total("shop", "");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        total("web", "") + total("web-canary", ""),
        web_stopped,
        "web traffic counted after its load stopped"
    );
    assert!(
        total("shop", "") > shop_before,
        "Prometheus stopped scraping"
    );

    // Prometheus stopped: queries fail naming the address; restarted on the
    // same port and data directory, it has the old samples and scrapes again.
    let url = prom.url();
    let before_stop = total("shop", "");
    prom.stop().unwrap();
    assert!(!prom.is_running());
    let e = prom.query("up").unwrap_err();
    assert!(e.0.contains(&prom.address().to_string()), "{e}");
    prom.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(prom.url(), url);
    // A fresh data directory would hold a sample or two of `up`; the kept one
    // has every scrape since the start.
    let scrapes = value(&prom, "count_over_time(up{job=\"ramp-sim\"}[5m])");
    assert!(
        scrapes >= 10.0,
        "scrapes kept across the restart: {scrapes}"
    );
    assert!(total("shop", "") >= before_stop);

    sim_ok(&env, &["load", "stop", "--all"]);
    let list: serde_json::Value =
        serde_json::from_str(&sim_ok(&env, &["load", "list", "-o", "json"])).unwrap();
    assert_eq!(list["streams"], serde_json::json!([]));
}

/// Requests served per destination workload (destination reporter) in the
/// scenario's namespace, as Prometheus has them now.
fn served(prom: &Prometheus, ns: &str, workload: &str, extra: &str) -> f64 {
    value(
        prom,
        &format!(
            "sum(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"{ns}\",\
             destination_workload=\"{workload}\"{extra}}})"
        ),
    )
}

/// The walk-through (examples/canary-istio) under steady load through its
/// gateway, with a canary template that answers 30% 5xx: Prometheus sees what
/// ramp's routing does at each step — nothing on the canary at the header
/// step, half the traffic and its errors at 50%, nothing again once aborted.
#[test]
fn prometheus_sees_the_traffic_ramp_routes_at_each_step() {
    const RO: &str = "rollouts-demo";
    let env = Env::start("telemetry-steps");
    let ns = env.ns.clone();
    env.start_canary_example();
    let prom = Prometheus::start(&scrape_target_of(&env.kubeconfig).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    sim_ok(
        &env,
        &[
            "load",
            "start",
            "-n",
            &ns,
            "--host",
            "service-demo",
            "--gateway",
            "simple-gateway",
            "--rps",
            "200",
        ],
    );
    let stable = |extra: &str| served(&prom, &ns, "workload-demo", extra);
    let canary = |extra: &str| served(&prom, &ns, "workload-demo-canary", extra);
    env.wait_until(
        "Prometheus sees the stable answering",
        Duration::from_secs(20),
        |_| stable("") > 200.0,
    );

    // A bad canary is a template change like any other.
    env.kubectl(&[
        "patch",
        "deployment",
        "workload-demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.ramp.dev/error-rate":"0.3"}}}}}"#,
    ])
    .ok();
    env.wait_step(RO, 1, "StepPaused");
    // Step 1 routes only requests with the header: none of the load's.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(canary(""), 0.0, "the header step sent load to the canary");

    // Step 2: 50%, answered 30% 5xx by the canary pods.
    env.approve(RO, 1);
    env.wait_step(RO, 2, "StepPaused");
    std::thread::sleep(Duration::from_millis(1500));
    let (s0, c0, e0) = (stable(""), canary(""), canary(",response_code=~\"5..\""));
    std::thread::sleep(Duration::from_secs(4));
    let (s1, c1, e1) = (stable(""), canary(""), canary(",response_code=~\"5..\""));
    let share = (c1 - c0) / ((c1 - c0) + (s1 - s0));
    let errors = (e1 - e0) / (c1 - c0);
    eprintln!("measured at 50%: canary share {share:.3}, canary 5xx {errors:.3}");
    assert!((share - 0.5).abs() < 0.08, "canary share at 50%: {share}");
    assert!((errors - 0.3).abs() < 0.1, "canary 5xx share: {errors}");
    assert_eq!(stable(",response_code=~\"5..\""), 0.0);

    // Aborted: routing restored, the canary gets nothing more.
    env.ramp(&["abort", RO]).ok();
    env.wait_phase(RO, "Aborted");
    std::thread::sleep(Duration::from_millis(1500));
    let after_abort = canary("");
    let stable_after_abort = stable("");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(canary(""), after_abort, "canary traffic after the abort");
    assert!(
        stable("") > stable_after_abort,
        "the stable stopped answering"
    );
}
