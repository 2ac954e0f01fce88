//! The analysis client against a real Prometheus (`/usr/bin/prometheus`,
//! scraping itself every second): numbers, empty vectors, NaN, rejected
//! queries, several series, a closed port, and whole measurements.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ramp_core::analysis::{MeasurementRequest, MetricQuery, Outcome};
use ramp_operator::analysis::{Prometheus, QueryError, QueryValue};
use ramp_operator::certs::CertBundle;

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus scraping itself; returns once its own series are queryable.
async fn start() -> Server {
    start_with(None).await
}

/// [`start`], serving HTTPS with `tls`'s certificate when given (its
/// `web.config.file`), and checked with a client trusting `tls`'s CA.
async fn start_with(tls: Option<&CertBundle>) -> Server {
    let bin = std::env::var("RAMP_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    // Over TLS it scrapes itself over TLS too, trusting the test's CA.
    let scrape_tls = match tls {
        Some(t) => {
            let ca = dir.path().join("ca.crt");
            std::fs::write(&ca, &t.ca_cert_pem).unwrap();
            format!(
                "  scheme: https\n  tls_config: {{ca_file: {}}}\n",
                ca.display()
            )
        }
        None => String::new(),
    };
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: self\n{scrape_tls}  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut cmd = Command::new(&bin);
    let (scheme, client) = match tls {
        Some(t) => {
            std::fs::write(dir.path().join("tls.crt"), &t.cert_pem).unwrap();
            std::fs::write(dir.path().join("tls.key"), &t.key_pem).unwrap();
            let web = dir.path().join("web.yml");
            std::fs::write(
                &web,
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    dir.path().join("tls.crt").display(),
                    dir.path().join("tls.key").display()
                ),
            )
            .unwrap();
            cmd.arg(format!("--web.config.file={}", web.display()));
            let client =
                Prometheus::with_ca_pem(Duration::from_secs(5), t.ca_cert_pem.as_bytes()).unwrap();
            ("https", client)
        }
        None => ("http", Prometheus::default()),
    };
    let child = cmd
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin} (install Debian's prometheus package): {e}"));
    let server = Server {
        child,
        url: format!("{scheme}://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(QueryValue::Number(n)) = client
            .query(&server.url, "sum(prometheus_http_requests_total)")
            .await
            && n > 0.0
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not come up at {}",
            server.url
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn queries_against_a_real_prometheus() {
    let p = start().await;
    let c = Prometheus::default();

    // One series: its number.
    match c.query(&p.url, "sum(prometheus_http_requests_total)").await {
        Ok(QueryValue::Number(n)) => assert!(n >= 1.0, "{n}"),
        other => panic!("{other:?}"),
    }
    // A scalar, and NaN.
    assert_eq!(
        c.query(&p.url, "2 * 21").await,
        Ok(QueryValue::Number(42.0))
    );
    match c.query(&p.url, "0 / 0").await {
        Ok(QueryValue::Number(n)) => assert!(n.is_nan()),
        other => panic!("{other:?}"),
    }
    // Nothing matches: an empty vector.
    assert_eq!(
        c.query(
            &p.url,
            "prometheus_http_requests_total{handler=\"/no-such-handler\"}"
        )
        .await,
        Ok(QueryValue::Empty)
    );
    // A query that does not parse is rejected with Prometheus' reason.
    match c.query(&p.url, "sum(rate(").await {
        Err(QueryError::Rejected { kind, detail, .. }) => {
            assert_eq!(kind, "bad_data");
            assert!(detail.contains("parse error"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // Several series cannot be judged against one range.
    let e = c
        .query(
            &p.url,
            "vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\")",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("it must return one number"), "{e}");
    // A range vector is not a number.
    let e = c
        .query(&p.url, "prometheus_http_requests_total[10s]")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("returned a matrix"), "{e}");
}

#[tokio::test]
async fn a_closed_port_and_a_bad_address_are_errors_naming_the_address() {
    let c = Prometheus::new(Duration::from_secs(2));
    let url = format!("http://127.0.0.1:{}", free_port());
    match c.query(&url, "up").await {
        Err(e @ QueryError::Unreachable { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("Prometheus at {url} is unreachable")),
                "{text}"
            );
            assert!(text.to_lowercase().contains("connection refused"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    match c.query("ftp://prometheus:9090", "up").await {
        Err(QueryError::BadAddress { detail, .. }) => {
            assert!(detail.contains("http:// or https://"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn https_prometheus_is_queried_when_its_ca_is_trusted_and_refused_otherwise() {
    let tls = CertBundle::generate(&["127.0.0.1".to_string()]).unwrap();
    let p = start_with(Some(&tls)).await;
    assert!(p.url.starts_with("https://"), "{}", p.url);

    // Trusting the private CA (what --prometheus-ca-file gives): answers.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &tls.ca_cert_pem).unwrap();
    let trusted = Prometheus::with_ca_file(Duration::from_secs(5), ca.to_str().unwrap()).unwrap();
    assert_eq!(
        trusted.query(&p.url, "2 * 21").await,
        Ok(QueryValue::Number(42.0))
    );

    // The system's roots only: the certificate is refused, and the error
    // says so (an Error measurement: the step holds, nothing is aborted).
    match Prometheus::default().query(&p.url, "up").await {
        Err(e @ QueryError::Unreachable { .. }) => {
            let text = e.to_string().to_lowercase();
            assert!(text.contains("certificate"), "{text}");
            assert!(text.contains(&p.url), "{text}");
        }
        other => panic!("{other:?}"),
    }

    // Plain HTTP to the TLS port is not mistaken for an answer.
    let plain = p.url.replacen("https://", "http://", 1);
    assert!(Prometheus::default().query(&plain, "up").await.is_err());
}

#[test]
fn a_ca_file_without_certificates_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let e = Prometheus::with_ca_file(Duration::from_secs(1), path.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("empty.pem") && e.contains("no PEM certificate"),
        "{e}"
    );
    let missing = dir.path().join("missing.pem");
    let e = Prometheus::with_ca_file(Duration::from_secs(1), missing.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts connections and reads, but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let c = Prometheus::new(Duration::from_millis(500));
    let started = Instant::now();
    let e = c.query(&url, "up").await.unwrap_err();
    assert_eq!(
        e,
        QueryError::Timeout {
            address: url.clone(),
            after: Duration::from_millis(500),
        }
    );
    assert_eq!(
        e.to_string(),
        format!("Prometheus at {url} did not answer within 0.5s")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_measurement_gives_each_metric_its_value_and_the_request_count() {
    let p = start().await;
    let c = Prometheus::default();
    let req = MeasurementRequest {
        address: Some(p.url.clone()),
        window: "10s".into(),
        samples_query: "sum(prometheus_http_requests_total)".into(),
        metrics: vec![
            MetricQuery {
                name: "answer".into(),
                query: "42".into(),
            },
            MetricQuery {
                name: "nothing".into(),
                query: "up{job=\"no-such-job\"}".into(),
            },
            MetricQuery {
                name: "broken".into(),
                query: "sum(".into(),
            },
        ],
    };
    let now = chrono::Utc::now();
    let got = c.measure(&req, None, now).await;
    assert_eq!(got.len(), 3);
    match &got[0].outcome {
        Outcome::Value { value, samples } => {
            assert_eq!(*value, 42.0);
            assert!(samples.unwrap() >= 1.0);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&got[1].outcome, Outcome::Empty { samples: Some(s) } if *s >= 1.0),
        "{:?}",
        got[1]
    );
    assert!(
        matches!(&got[2].outcome, Outcome::Error(e) if e.contains("rejected the query (bad_data)")),
        "{:?}",
        got[2]
    );
    assert!(got.iter().all(|m| m.at == now));

    // No address anywhere: every metric is an Error saying where to set one.
    let mut none = req.clone();
    none.address = None;
    let got = c.measure(&none, None, now).await;
    assert!(
        got.iter()
            .all(|m| matches!(&m.outcome, Outcome::Error(e) if e.contains("--prometheus-url")))
    );
    // The operator's default address is used when the Rollout names none.
    let got = c.measure(&none, Some(&p.url), now).await;
    assert!(matches!(got[0].outcome, Outcome::Value { value, .. } if value == 42.0));

    // Prometheus gone: Error naming the address, for every metric.
    drop(p);
    let got = c.measure(&req, None, now).await;
    assert!(
        got.iter()
            .all(|m| matches!(&m.outcome, Outcome::Error(e) if e.contains("is unreachable"))),
        "{got:?}"
    );
}
