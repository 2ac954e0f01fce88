//! A real Prometheus for a test: its own port and data directory, scraping
//! one target (the sim's `/metrics`) every second.
//!
//! ```no_run
//! use ramp_e2e::prometheus::{Prometheus, scrape_target_of};
//! # fn demo(kubeconfig: &std::path::Path) -> Result<(), ramp_e2e::prometheus::PrometheusError> {
//! let prom = Prometheus::start(&scrape_target_of(kubeconfig)?)?; // ready, first scrape up
//! let data = prom.query("sum(istio_requests_total)")?;          // the API's `data`
//! prom.stop()?;      // SIGTERM, wait
//! prom.restart()?;   // same port, same data directory
//! # Ok(()) }
//! ```
//!
//! The binary is `$RAMP_PROMETHEUS`, else `prometheus` on `PATH` (Debian's
//! `prometheus` package; `.ci/run` installs it when missing).

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The scrape job's name (the `job` label of every series).
pub const JOB: &str = "ramp-sim";

/// Why Prometheus could not be started or asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusError(pub String);

impl fmt::Display for PrometheusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PrometheusError {}

/// Results of this module.
pub type Result<T> = std::result::Result<T, PrometheusError>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(PrometheusError(message.into()))
}

/// A Prometheus process started for a test. Dropping it kills the process
/// and removes its data directory.
pub struct Prometheus {
    binary: PathBuf,
    address: SocketAddr,
    target: String,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus")
            .field("address", &self.address)
            .field("target", &self.target)
            .finish()
    }
}

/// The Prometheus binary: `$RAMP_PROMETHEUS`, else `prometheus` on `PATH`.
pub fn binary() -> Result<PathBuf> {
    find_binary(
        std::env::var_os("RAMP_PROMETHEUS"),
        std::env::var_os("PATH").unwrap_or_default(),
    )
}

fn find_binary(explicit: Option<std::ffi::OsString>, path: std::ffi::OsString) -> Result<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return err(format!(
            "RAMP_PROMETHEUS={} is not a file; point it at a Prometheus 2.x binary or unset it \
             to use `prometheus` from PATH (Debian: apt-get install prometheus)",
            p.display()
        ));
    }
    std::env::split_paths(&path)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            PrometheusError(
                "prometheus is not installed: no `prometheus` on PATH and RAMP_PROMETHEUS unset; \
                 install Debian's package (apt-get install prometheus) or set RAMP_PROMETHEUS"
                    .into(),
            )
        })
}

/// `host:port` of the API server in `kubeconfig` (where the sim serves `/metrics`).
pub fn scrape_target_of(kubeconfig: &Path) -> Result<String> {
    let text = std::fs::read_to_string(kubeconfig)
        .map_err(|e| PrometheusError(format!("reading {}: {e}", kubeconfig.display())))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| PrometheusError(format!("{}: {e}", kubeconfig.display())))?;
    let server = doc["clusters"][0]["cluster"]["server"]
        .as_str()
        .ok_or_else(|| {
            PrometheusError(format!(
                "{}: clusters[0].cluster.server is missing",
                kubeconfig.display()
            ))
        })?;
    Ok(server
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned())
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port with its own data directory,
    /// scraping `http://<scrape_target>/metrics` (job [`JOB`]) every second
    /// (`evaluation_interval` 1 s too). Returns once `/-/ready` answers and
    /// the first scrape of the target is up.
    pub fn start(scrape_target: &str) -> Result<Prometheus> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("ramp-prometheus-")
            .tempdir()
            .map_err(|e| PrometheusError(format!("creating a data directory: {e}")))?;
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| PrometheusError(format!("finding a free port: {e}")))?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"{scrape_target}\"]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)
            .map_err(|e| PrometheusError(format!("writing prometheus.yml: {e}")))?;
        let p = Prometheus {
            binary,
            address,
            target: scrape_target.to_owned(),
            dir,
            child: Mutex::new(None),
        };
        p.launch()?;
        Ok(p)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The listen address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The data directory (kept across [`Prometheus::restart`]).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Prometheus's own log so far (for diagnostics).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits (up to 10 s, then SIGKILL). Queries fail
    /// until [`Prometheus::restart`].
    pub fn stop(&self) -> Result<()> {
        let Some(mut child) = self.lock().take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status();
        if !term.is_ok_and(|s| s.success()) {
            let _ = child.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return err(format!(
                        "prometheus (pid {pid}) did not stop within 10 s of SIGTERM; killed"
                    ));
                }
            }
        }
    }

    /// Starts it again (stopping it first if running) on the same port with
    /// the same data directory; returns once ready and scraping again.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.lock()
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// An instant query (`GET /api/v1/query`): the answer's `data`
    /// (`{"resultType": ..., "result": ...}`); an error when Prometheus is
    /// unreachable or refuses the query (with its message).
    pub fn query(&self, promql: &str) -> Result<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http_get(self.address, &path, Duration::from_secs(10))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| {
            PrometheusError(format!(
                "query {promql:?}: HTTP {status}, not JSON ({e}): {body}"
            ))
        })?;
        if v["status"] != "success" {
            return err(format!(
                "query {promql:?}: HTTP {status}: {}: {}",
                v["errorType"].as_str().unwrap_or("error"),
                v["error"].as_str().unwrap_or(&body)
            ));
        }
        Ok(v["data"].clone())
    }

    /// The samples of an instant vector query, as (labels, value).
    pub fn vector(&self, promql: &str) -> Result<Vec<(serde_json::Map<String, Value>, f64)>> {
        let data = self.query(promql)?;
        if data["resultType"] != "vector" {
            return err(format!(
                "query {promql:?}: expected a vector, got {}",
                data["resultType"]
            ));
        }
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let labels = s["metric"].as_object().cloned().unwrap_or_default();
                (labels, sample_value(&s["value"]))
            })
            .collect())
    }

    /// The single value of a query that yields a scalar or a one-sample
    /// vector; `None` for an empty vector (no data). NaN is returned as is.
    pub fn value(&self, promql: &str) -> Result<Option<f64>> {
        let data = self.query(promql)?;
        match data["resultType"].as_str() {
            Some("scalar") => Ok(Some(sample_value(&data["result"]))),
            Some("vector") => {
                let result = data["result"].as_array().cloned().unwrap_or_default();
                match result.as_slice() {
                    [] => Ok(None),
                    [one] => Ok(Some(sample_value(&one["value"]))),
                    many => err(format!(
                        "query {promql:?}: {} samples, expected one",
                        many.len()
                    )),
                }
            }
            other => err(format!(
                "query {promql:?}: expected a scalar or vector, got {other:?}"
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn launch(&self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("prometheus.log"))
            .map_err(|e| PrometheusError(format!("opening prometheus.log: {e}")))?;
        let child = Command::new(&self.binary)
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", self.data_dir().display()))
            .arg(format!("--web.listen-address={}", self.address))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                PrometheusError(format!(
                    "starting {}: {e}; install Debian's prometheus package \
                     (apt-get install prometheus) or set RAMP_PROMETHEUS",
                    self.binary.display()
                ))
            })?;
        *self.lock() = Some(child);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let fail = |what: &str| {
            let running = self.is_running();
            let _ = self.stop();
            let tail: Vec<String> = self
                .log()
                .lines()
                .rev()
                .take(15)
                .map(str::to_owned)
                .collect();
            let tail: Vec<String> = tail.into_iter().rev().collect();
            err(format!(
                "prometheus ({}) {what}{}; its log:\n{}",
                self.binary.display(),
                if running { "" } else { " (it exited)" },
                tail.join("\n")
            ))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !self.is_running() {
                return fail("stopped while starting");
            }
            if matches!(
                http_get(self.address, "/-/ready", Duration::from_secs(2)),
                Ok((200, _))
            ) {
                break;
            }
            if Instant::now() > deadline {
                return fail(&format!("was not ready on {} within 30 s", self.address));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // A scrape of this run: after a restart, the last run's `up` is still
        // within the lookback window, so look at its timestamp too.
        let up = format!("up{{job=\"{JOB}\"}} and timestamp(up{{job=\"{JOB}\"}}) >= {started}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(v)) = self.value(&up)
                && v == 1.0
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return fail(&format!(
                    "has not scraped http://{}/metrics successfully within 20 s",
                    self.target
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.lock().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A sample's value (`[time, "value"]`, or a scalar's `[time, "value"]`).
fn sample_value(v: &Value) -> f64 {
    v[1].as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A plain HTTP/1.0 GET (the connection closes after the answer): the status
/// code and the body.
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let fail = |e: std::io::Error| PrometheusError(format!("GET http://{addr}{path}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    s.set_read_timeout(Some(timeout)).map_err(fail)?;
    s.set_write_timeout(Some(timeout)).map_err(fail)?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    )
    .map_err(fail)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        PrometheusError(format!(
            "GET http://{addr}{path}: no HTTP header in the answer"
        ))
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            PrometheusError(format!("GET http://{addr}{path}: bad status line {head:?}"))
        })?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_is_percent_encoded() {
        assert_eq!(
            percent_encode(r#"sum(rate(x{a="b",c=~"5.."}[1m]))"#),
            "sum%28rate%28x%7Ba%3D%22b%22%2Cc%3D~%225..%22%7D%5B1m%5D%29%29"
        );
    }

    #[test]
    fn the_scrape_target_comes_from_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kc");
        std::fs::write(
            &kc,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: http://127.0.0.1:4321\n",
        )
        .unwrap();
        assert_eq!(scrape_target_of(&kc).unwrap(), "127.0.0.1:4321");
        std::fs::write(&kc, "apiVersion: v1\nclusters: []\n").unwrap();
        let e = scrape_target_of(&kc).unwrap_err();
        assert!(e.0.contains("clusters[0].cluster.server"), "{e}");
    }

    #[test]
    fn a_missing_binary_says_what_to_install() {
        let e = find_binary(Some("/nonexistent/prometheus".into()), "".into()).unwrap_err();
        assert!(
            e.0.contains("RAMP_PROMETHEUS=/nonexistent/prometheus"),
            "{e}"
        );
        assert!(e.0.contains("apt-get install prometheus"), "{e}");
        let e = find_binary(None, "/nonexistent:/also-not".into()).unwrap_err();
        assert!(e.0.contains("prometheus is not installed"), "{e}");
        assert!(e.0.contains("apt-get install prometheus"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prometheus"), "").unwrap();
        assert_eq!(
            find_binary(None, dir.path().as_os_str().to_owned()).unwrap(),
            dir.path().join("prometheus")
        );
    }
}
