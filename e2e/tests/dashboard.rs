//! `kubectl ramp dashboard` in a real browser: Debian's headless Chromium
//! driven through chromedriver (fantoccini), against the sim with the
//! operator running. The walk-through is driven from the page alone (three
//! approvals by clicking and confirming), the page's traffic picture is
//! checked against the VirtualService at each step, an abort from the page
//! restores routing, and a stale approval shows the server's refusal.
//!
//! Waits on the page are bounded DOM polls (5 s). The delay between a
//! VirtualService change on the server and the page showing it is measured
//! and printed (`dashboard latency: ...`), not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ramp_e2e::{Env, bin, repo_root};
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";

/// chromedriver and a headless Chromium session (closed on drop of the driver).
struct Browser {
    driver: Child,
    client: Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver not found: install Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver; .ci/run does)",
            );
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1366,768",
                         "--no-first-run", "--disable-extensions"]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let conn = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(conn)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Browser { driver, client },
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no browser session from chromedriver: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await
            .expect("script");
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits (up to 5 s) until the text of `css` satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let t = self.text(css).await;
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not show {what} within 5 s; {css} reads: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn click(&self, css: &str) {
        let e = self
            .client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        e.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks an action button and confirms in the dialog.
    async fn act(&self, action: &str) {
        self.click(&format!("#action-{action}")).await;
        self.wait_dialog().await;
        self.click("#confirm-ok").await;
    }

    async fn wait_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let open = self
                .client
                .execute("return document.getElementById('confirm').open;", vec![])
                .await
                .unwrap();
            if open == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "the confirmation did not open");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = repo_root().join("target/dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `kubectl-ramp dashboard --port 0` for the scenario's namespace.
struct Dashboard {
    child: Child,
    url: String,
}

impl Dashboard {
    fn start(env: &Env) -> Dashboard {
        Dashboard::start_with(env, &[])
    }

    fn start_with(env: &Env, flags: &[&str]) -> Dashboard {
        let mut child = Command::new(bin("kubectl-ramp"))
            .args(["dashboard", "--port", "0"])
            .args(flags)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args(["-n", &env.ns])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kubectl-ramp dashboard");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the dashboard's first line: {line:?}"))
            .to_string();
        assert!(!url.ends_with(":0/"), "the real port is printed: {line:?}");
        Dashboard { child, url }
    }

    fn page(&self, ns: &str) -> String {
        format!("{}#/rollouts/{ns}/{RO}", self.url)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The traffic picture the page should draw for a VirtualService, derived
/// here from the object (independently of the dashboard's code): one line
/// per http route, `matches → host share% (role), ...`.
fn expected_rules(vs: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in vs["spec"]["http"].as_array().unwrap() {
        let dests = r["route"].as_array().unwrap();
        let parts: Vec<String> = dests
            .iter()
            .map(|d| {
                let host = d["destination"]["host"].as_str().unwrap();
                let share = d["weight"].as_i64().unwrap_or(100);
                let role = if host == "service-demo-canary" {
                    "canary"
                } else {
                    "stable"
                };
                format!("{host} {share}% ({role})")
            })
            .collect();
        out.push(parts.join(", "));
    }
    out
}

/// The page's rule lines: the split text of each rule of `vs-demo`.
async fn page_rules(b: &Browser) -> Vec<String> {
    let v = b
        .client
        .execute(
            "return [...document.querySelectorAll('#traffic figure[data-name=\"vs-demo\"] li.rule .split')].map(e => e.textContent);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap_or_default()
}

/// `vs-demo` read through the API directly (a few ms a read, much faster
/// than kubectl), to time the page against the server.
struct Vs(kube::Api<kube::api::DynamicObject>);

impl Vs {
    async fn new(env: &Env) -> Vs {
        use kube::api::{ApiResource, GroupVersionKind};
        let kc = kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("client config");
        let client = kube::Client::try_from(cfg).expect("client");
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
        Vs(kube::Api::namespaced_with(client, &env.ns, &ar))
    }

    async fn rules(&self) -> Vec<String> {
        let vs = self.0.get("vs-demo").await.expect("get vs-demo");
        expected_rules(&serde_json::to_value(vs).unwrap())
    }
}

/// Waits until `vs-demo` has the `want` shape on the server (up to 60 s)
/// and the page draws it (up to 5 s more); returns how long after the
/// server was first seen with that shape the page showed it.
async fn wait_page_matches_vs(vs: &Vs, b: &Browser, what: &str, want: &[&str]) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let expected = vs.rules().await;
        if expected == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the VirtualService never got the shape {want:?} (now {expected:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at = Instant::now();
    loop {
        if page_rules(b).await == want {
            return at.elapsed();
        }
        assert!(
            at.elapsed() < Duration::from_secs(5),
            "{what}: the page did not show the VirtualService {want:?} within 5 s: page {:?}",
            page_rules(b).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_through_driven_from_the_page() {
    let env = Env::start("dashboard-walk");
    let original = env.start_canary_example();
    let dash = Dashboard::start(&env);
    let b = Browser::start().await;
    let vs = Vs::new(&env).await;
    let ns = env.ns.clone();

    // The list shows the Healthy rollout.
    b.client.goto(&dash.url).await.unwrap();
    let row = format!("tr[data-rollout=\"{ns}/{RO}\"]");
    b.wait_text(&format!("{row} .phase"), "the Healthy rollout", |t| {
        t.contains("Healthy")
    })
    .await;

    // A template change starts a rollout (the only kubectl in this scenario).
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    b.wait_text(&format!("{row} .step"), "step 1/3 in the list", |t| {
        t == "1/3"
    })
    .await;
    b.client.goto(&dash.page(&ns)).await.unwrap();
    b.wait_text("#position", "step 1 paused", |t| t == "step 1/3 StepPaused")
        .await;
    let mut latencies = Vec::new();
    latencies.push(
        wait_page_matches_vs(
            &vs,
            &b,
            "step 1",
            &[
                "service-demo-canary 100% (canary)",
                "service-demo 100% (stable)",
            ],
        )
        .await,
    );
    let traffic = b.text("#traffic").await;
    assert!(
        traffic.contains("requests matching header version=canary"),
        "{traffic}"
    );
    assert!(traffic.contains("all other requests"), "{traffic}");
    assert!(
        b.text("#steps li[aria-current=step]")
            .await
            .starts_with("1. "),
        "step 1 is marked current"
    );
    assert!(
        b.text("#waiting-for")
            .await
            .contains("waiting for approval"),
        "what it waits for"
    );
    b.wait_text("#canary-pods", "the canary pod", |t| {
        t.contains("workload-demo-canary-") && t.contains("Running, ready")
    })
    .await;

    // Approval 1 by clicking: 50/50.
    b.act("approve").await;
    b.wait_text("#action-message", "the approval", |t| {
        t.contains("approved step 1/3")
    })
    .await;
    latencies.push(
        wait_page_matches_vs(
            &vs,
            &b,
            "step 2",
            &["service-demo 50% (stable), service-demo-canary 50% (canary)"],
        )
        .await,
    );
    b.wait_text("#position", "step 2 paused", |t| t == "step 2/3 StepPaused")
        .await;
    b.wait_text("#weight", "the canary weight", |t| t == "50%")
        .await;
    b.wait_text("#deployments", "the canary Deployment", |t| {
        t.contains("workload-demo-canary")
    })
    .await;
    b.wait_text("#events", "the Approved Event", |t| t.contains("Approved"))
        .await;
    b.screenshot("dashboard-rollout.png").await;
    b.client.goto(&dash.url).await.unwrap();
    b.wait_text(&format!("{row} .weight"), "50% in the list", |t| t == "50%")
        .await;
    b.screenshot("dashboard-list.png").await;

    // The text filter hides what does not match.
    let filter = b.client.find(Locator::Css("#text-filter")).await.unwrap();
    filter.send_keys("no-such-rollout").await.unwrap();
    b.wait_text("#list-caption", "the filter", |t| t.starts_with("0 of 1"))
        .await;

    // Approval 2: 20/80.
    b.client.goto(&dash.page(&ns)).await.unwrap();
    b.wait_text("#position", "step 2 paused", |t| t == "step 2/3 StepPaused")
        .await;
    b.act("approve").await;
    latencies.push(
        wait_page_matches_vs(
            &vs,
            &b,
            "step 3",
            &["service-demo 20% (stable), service-demo-canary 80% (canary)"],
        )
        .await,
    );
    b.wait_text("#position", "step 3 paused", |t| t == "step 3/3 StepPaused")
        .await;

    // Approval 3: the rollout finishes and routing is back to the original.
    b.act("approve").await;
    b.wait_text("#action-message", "the last approval", |t| {
        t.contains("approved step 3/3")
    })
    .await;
    env.wait_phase(RO, "Healthy");
    latencies
        .push(wait_page_matches_vs(&vs, &b, "restored", &["service-demo 100% (stable)"]).await);
    b.wait_text(".head .badge", "Healthy on the page", |t| t == "Healthy")
        .await;
    env.assert_example_restored(&original);
    eprintln!(
        "dashboard latency (VirtualService changed on the server -> shown on the page), ms: {:?}",
        latencies
            .iter()
            .map(Duration::as_millis)
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_approval_is_refused_and_abort_restores_routing() {
    let env = Env::start("dashboard-abort");
    let original = env.start_canary_example();
    let dash = Dashboard::start(&env);
    let b = Browser::start().await;
    let vs = Vs::new(&env).await;
    let ns = env.ns.clone();
    env.example_to_step(1);
    b.client.goto(&dash.page(&ns)).await.unwrap();
    b.wait_text("#position", "step 1 paused", |t| t == "step 1/3 StepPaused")
        .await;

    // A read-only dashboard shows the same page without a single button.
    let ro_dash = Dashboard::start_with(&env, &["--read-only"]);
    b.client.goto(&ro_dash.page(&ns)).await.unwrap();
    b.wait_text("#actions", "the read-only note", |t| {
        t.contains("read-only")
    })
    .await;
    let buttons = b
        .client
        .execute(
            "return document.querySelectorAll('#actions button').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(buttons, json!(0), "no action buttons when read-only");
    drop(ro_dash);
    b.client.goto(&dash.page(&ns)).await.unwrap();
    b.wait_text("#position", "step 1 paused", |t| t == "step 1/3 StepPaused")
        .await;

    // The user opens the confirmation; meanwhile someone approves with the CLI.
    b.click("#action-approve").await;
    b.wait_dialog().await;
    let out = env.ramp(&["approve", RO]).ok();
    assert!(out.contains("approved step 1/3"), "{out}");
    env.wait_step(RO, 2, "StepPaused");
    b.click("#confirm-ok").await;
    let msg = b
        .wait_text("#action-message", "the refusal", |t| {
            t.starts_with("Refused")
        })
        .await;
    assert!(
        msg.contains("moved on") && msg.contains("not approved"),
        "{msg}"
    );
    assert_eq!(
        b.client
            .execute(
                "return document.getElementById('action-message').getAttribute('role');",
                vec![]
            )
            .await
            .unwrap(),
        json!("alert"),
        "the refusal is announced"
    );
    // Nothing was approved twice: still waiting at step 2.
    let s = env.rollout_status(RO);
    assert_eq!(s["canaryStatus"]["currentStepIndex"], 2);
    assert_eq!(s["canaryStatus"]["currentStepState"], "StepPaused");

    // Abort from the page at step 2: routing restored, the page shows it.
    wait_page_matches_vs(
        &vs,
        &b,
        "step 2",
        &["service-demo 50% (stable), service-demo-canary 50% (canary)"],
    )
    .await;
    b.act("abort").await;
    b.wait_text("#action-message", "the abort", |t| t.contains("abort"))
        .await;
    env.wait_phase(RO, "Aborted");
    wait_page_matches_vs(&vs, &b, "aborted", &["service-demo 100% (stable)"]).await;
    b.wait_text(".head .badge", "Aborted on the page", |t| t == "Aborted")
        .await;
    b.wait_text("#action-retry", "the retry button", |t| t == "Retry")
        .await;
    env.wait_until("the canary is scaled to 0", Duration::from_secs(60), |e| {
        e.get("deployment", "workload-demo-canary")
            .is_some_and(|c| c["spec"]["replicas"] == 0)
    });
    assert_eq!(
        env.get("virtualservice", "vs-demo").unwrap()["spec"],
        original["spec"],
        "traffic is back on the stable Service"
    );
    b.wait_text("#deployments", "the canary at 0 replicas", |t| {
        t.contains("workload-demo-canarycanary0/0")
    })
    .await;
    b.wait_text("#events", "the Aborted Event", |t| t.contains("Abort"))
        .await;
}

/// The walk-through's Rollout with one traffic step (waiting for approval,
/// measured meanwhile) and analysis on the built-in metrics.
fn analysed_rollout(prometheus: &str) -> String {
    format!(
        r#"apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata:
  name: rollouts-demo
spec:
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: workload-demo}}
  strategy:
    canary:
      analysis:
        prometheus: {{address: "{prometheus}"}}
        interval: 2s
        metrics:
          - {{name: request-success-rate, thresholdRange: {{min: 99}}}}
          - {{name: request-duration, thresholdRange: {{max: 500}}}}
      steps:
        - {{replicas: 1, traffic: "20%"}}
      trafficRoutings:
        - service: service-demo
          gracePeriodSeconds: 1
          customNetworkRefs:
            - {{apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: vs-demo}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_is_charted_from_status_and_from_prometheus() {
    use ramp_e2e::prometheus::{Prometheus, scrape_target_of};
    let env = Env::start("dashboard-analysis");
    let prom = Prometheus::start(&scrape_target_of(&env.kubeconfig).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    for f in ["deployment.yaml", "service.yaml", "virtualservice.yaml"] {
        let text =
            std::fs::read_to_string(repo_root().join("examples/canary-istio").join(f)).unwrap();
        env.apply(&text);
    }
    env.apply(&analysed_rollout(&prom.url()));
    env.wait_phase(RO, "Healthy");
    let load = Command::new(bin("ramp-sim"))
        .args(["load", "start", "-n", &env.ns, "--host", "service-demo"])
        .args([
            "--gateway",
            "simple-gateway",
            "--rps",
            "100",
            "--kubeconfig",
        ])
        .arg(&env.kubeconfig)
        .output()
        .expect("ramp-sim load start");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    env.kubectl(&[
        "patch",
        "deployment",
        "workload-demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.ramp.dev/latency-ms":"40"}}}}}"#,
    ])
    .ok();
    let dash = Dashboard::start(&env);
    let b = Browser::start().await;
    b.client.goto(&dash.page(&env.ns)).await.unwrap();
    env.wait_step(RO, 1, "StepPaused");

    // The measurements in status become dots, one per measurement, with the threshold drawn.
    let chart = "#metrics figure[data-metric=\"request-duration\"]";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = b
            .client
            .execute(
                "return document.querySelectorAll(arguments[0] + ' circle.point').length;",
                vec![json!(chart)],
            )
            .await
            .unwrap();
        if n.as_u64().unwrap_or(0) >= 4 {
            break;
        }
        if Instant::now() >= deadline {
            b.screenshot("dashboard-analysis-failed.png").await;
            panic!(
                "fewer than 4 measurements charted: {n}; page: {:?}; status: {}",
                b.text("#metrics").await,
                env.rollout_status(RO)["canaryStatus"]["analysis"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let threshold = b.text(&format!("{chart} svg")).await;
    assert!(
        threshold.contains("max 500"),
        "the threshold is drawn: {threshold}"
    );
    b.wait_text(&format!("{chart} figcaption"), "the verdict", |t| {
        t.contains("Passed")
    })
    .await;

    // The same metrics from Prometheus (the operator's queries, over 15 minutes).
    let series = b
        .client
        .execute(
            "return fetch(arguments[0]).then(r => r.json());",
            vec![json!(format!("/api/rollouts/{}/{RO}/prometheus", env.ns))],
        )
        .await
        .unwrap();
    assert_eq!(series["address"], prom.url(), "{series}");
    let rate = series["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "request-success-rate")
        .unwrap();
    assert_eq!(rate["error"], Value::Null, "{rate}");
    let points = rate["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{rate}");
    assert!(
        points
            .iter()
            .all(|p| (0.0..=100.0).contains(&p["v"].as_f64().unwrap())),
        "{rate}"
    );
    b.wait_text("#prometheus-note", "the Prometheus note", |t| {
        t.starts_with("Grey: ")
    })
    .await;
    let lines = b
        .client
        .execute(
            "return document.querySelectorAll('#metrics polyline.prometheus').length;",
            vec![],
        )
        .await
        .unwrap();
    assert!(lines.as_u64().unwrap_or(0) >= 1, "no Prometheus line drawn");
    b.client
        .execute(
            "document.getElementById('h-metrics').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("dashboard-analysis.png").await;

    // Prometheus stopped: the page says why it has no series; the dots stay.
    prom.stop().unwrap();
    let series = b
        .client
        .execute(
            "return fetch(arguments[0]).then(r => r.json());",
            vec![json!(format!("/api/rollouts/{}/{RO}/prometheus", env.ns))],
        )
        .await
        .unwrap();
    let err = series["metrics"][0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("unreachable") || err.contains("did not answer"),
        "{series}"
    );
}
