//! Load benchmark of the `ramp-sim` API server (`make bench-sim`).
//!
//! Starts the real `ramp-sim serve` binary on loopback, opens watch streams on Deployments,
//! creates Deployments with many requests in flight, and reports:
//! - create throughput (writes/s) and create latency, with the watchers open;
//! - how long the watchers take to receive every event of the bulk load;
//! - full LIST latency of all objects (JSON);
//! - watch fan-out delay: from a create's response until every watcher has that event;
//! - the server's memory (VmRSS / VmHWM from `/proc/<pid>/status`).
//!
//! A baseline run against a fresh server without watchers gives the create throughput of the
//! store alone. Targets are printed next to the figures; missing one is not an error. The
//! program fails (non-zero exit) only when something does not work: the server does not start,
//! a request fails, a watcher loses its stream or misses events, a phase exceeds its time bound.
//!
//! ```text
//! cargo bench -p ramp-sim --bench sim -- [--objects 10000] [--watchers 1000] [--concurrency 64]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const NAMESPACE: &str = "bench";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/bench/deployments";
const ALL_DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
const PROBE_MARKER: &[u8] = b"\"name\":\"probe-";

const TARGET_WRITES: f64 = 5_000.0;
const TARGET_LIST_MS: f64 = 100.0;
const TARGET_RSS_MIB: f64 = 500.0;

#[derive(Debug, Parser)]
#[command(
    name = "sim-bench",
    about = "Load benchmark of the ramp-sim API server"
)]
struct Args {
    /// Deployments to create.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Watch streams on Deployments kept open during the load.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// Create requests in flight (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Full LISTs to time.
    #[arg(long, default_value_t = 20)]
    lists: usize,
    /// Single creates whose fan-out to every watcher is timed.
    #[arg(long, default_value_t = 50)]
    probes: usize,
    /// Passed to `ramp-sim serve --watch-coalesce-ms` (the server's default when absent).
    #[arg(long)]
    watch_coalesce_ms: Option<u64>,
    /// Skip the baseline run (creates without watchers on a fresh server).
    #[arg(long)]
    no_baseline: bool,
    /// The `ramp-sim` binary (default: the one cargo built with this benchmark).
    #[arg(long, env = "RAMP_SIM_BIN")]
    sim: Option<PathBuf>,
    /// Upper bound in seconds for each phase (creates, delivery, lists, probes).
    #[arg(long, default_value_t = 300)]
    phase_timeout: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

fn err(msg: impl Into<String>) -> BoxError {
    msg.into().into()
}

/// Nanoseconds since the start of the benchmark (comparable across tasks).
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

// ----- the server under test -----------------------------------------------------------------

struct Sim {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    token: String,
    _dir: tempfile::TempDir,
}

impl Sim {
    async fn start(bin: &Path, args: &Args) -> Result<Sim> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let token = format!("bench-{:016x}", rand::random::<u64>());
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--token", &token])
            // The API server alone: the workload controllers would turn each
            // Deployment into a ReplicaSet and pods, which is not what is measured.
            .arg("--no-controllers")
            .args(
                args.watch_coalesce_ms
                    .map(|ms| format!("--watch-coalesce-ms={ms}")),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("cannot start {}: {e}", bin.display())))?;
        let pid = child
            .id()
            .ok_or_else(|| err("ramp-sim exited right after starting"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| err("no stdout pipe to ramp-sim"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| err("ramp-sim did not report its address within 30 s"))??
            .ok_or_else(|| err("ramp-sim exited before reporting its address"))?;
        // "ramp-sim listening on http://127.0.0.1:PORT (kubeconfig: ...)"
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| err(format!("unexpected first line from ramp-sim: {line:?}")))?;
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| err(format!("bad address in {line:?}: {e}")))?;
        if !addr.ip().is_loopback() {
            return Err(err(format!("ramp-sim listens on {addr}, not on loopback")));
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Sim {
            child,
            pid,
            addr,
            token,
            _dir: dir,
        })
    }

    fn memory(&self) -> Result<Memory> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read {path}: {e}")))?;
        let field = |name: &str| -> Result<f64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .map(|kb| kb / 1024.0)
                .ok_or_else(|| err(format!("no {name} in {path}")))
        };
        Ok(Memory {
            rss_mib: field("VmRSS:")?,
            hwm_mib: field("VmHWM:")?,
        })
    }

    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(&self.pid.to_string())
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    async fn stop(mut self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !status.success() {
            return Err(err(format!("kill -TERM {} failed", self.pid)));
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(err(format!("ramp-sim exited with {s} after SIGTERM"))),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(err("ramp-sim did not exit within 10 s of SIGTERM"))
            }
        }
    }
}

/// User + system CPU time of a process (`"self"` for this one).
fn cpu_seconds(pid: &str) -> Result<f64> {
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100/s on
    // Linux); the command name (field 2) may contain spaces, so split after the last ')'.
    let path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read {path}: {e}")))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| err(format!("unexpected {path}")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After ')': the state is index 0, so utime (field 14) is index 11, stime index 12.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

#[derive(Clone, Copy, Debug)]
struct Memory {
    rss_mib: f64,
    hwm_mib: f64,
}

// ----- plain HTTP/1.1 requests over keep-alive connections ----------------------------------

struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
    auth: String,
}

impl Conn {
    async fn open(sim: &Sim) -> Result<Conn> {
        let stream = TcpStream::connect(sim.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: sim.addr.to_string(),
            auth: format!("Bearer {}", sim.token),
        })
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", &self.auth)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        want: StatusCode,
    ) -> Result<Bytes> {
        let (status, got) = self.request(method.clone(), path, body).await?;
        if status != want {
            return Err(err(format!(
                "{method} {path}: HTTP {status} (wanted {want}): {}",
                String::from_utf8_lossy(&got[..got.len().min(400)])
            )));
        }
        Ok(got)
    }
}

/// A small, realistic Deployment (~1 KiB of JSON).
fn deployment(name: &str, i: usize) -> Bytes {
    let team = ["payments", "search", "checkout", "identity"][i % 4];
    let obj = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": name, "team": team, "tier": "backend"},
            "annotations": {"ramp.dev/owner": format!("{team}@example.com")},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name, "team": team, "tier": "backend"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": format!("registry.example.com/{team}/{name}:1.{}.0", i % 17),
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "LOG_LEVEL", "value": "info"},
                                {"name": "TEAM", "value": team}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                           "periodSeconds": 5},
                    }],
                },
            },
        },
    });
    Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
}

async fn create_namespace(sim: &Sim) -> Result<()> {
    let mut c = Conn::open(sim).await?;
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    c.expect(
        Method::POST,
        "/api/v1/namespaces",
        Bytes::from(serde_json::to_vec(&ns)?),
        StatusCode::CREATED,
    )
    .await?;
    Ok(())
}

struct CreateRun {
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// `now_ns()` when the last response arrived.
    finished_ns: u64,
}

/// Creates `count` Deployments named `web-NNNNN` with `concurrency` requests in flight.
async fn bulk_create(
    sim: &Sim,
    count: usize,
    concurrency: usize,
    bound: Duration,
) -> Result<CreateRun> {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::open(sim).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let next = next.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, BoxError>(lat);
                }
                let name = format!("web-{i:05}");
                let body = deployment(&name, i);
                let t = Instant::now();
                conn.expect(Method::POST, DEPLOYMENTS, body, StatusCode::CREATED)
                    .await?;
                lat.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(count);
    let joined = tokio::time::timeout(bound, async {
        while let Some(r) = tasks.join_next().await {
            latencies.extend(r??);
        }
        Ok::<_, BoxError>(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => {
            return Err(err(format!(
                "creating {count} Deployments took longer than {} s",
                bound.as_secs()
            )));
        }
    }
    let elapsed = start.elapsed();
    if latencies.len() != count {
        return Err(err(format!(
            "{} of {count} creates answered",
            latencies.len()
        )));
    }
    Ok(CreateRun {
        elapsed,
        latencies,
        finished_ns: now_ns(),
    })
}

// ----- watchers: raw chunked HTTP streams, decoded cheaply ---------------------------------

#[derive(Default)]
struct WatcherState {
    /// ADDED/MODIFIED/DELETED lines received.
    events: AtomicU64,
    /// `now_ns()` of the last event line.
    last_event_ns: AtomicU64,
    /// Highest probe number seen, plus one.
    probe_seen: AtomicU64,
    /// `now_ns()` when that probe was seen.
    probe_ns: AtomicU64,
    /// Why the stream stopped (error event, EOF, I/O error).
    failure: Mutex<Option<String>>,
}

impl WatcherState {
    fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// Splits a decoded watch body into lines, keeping only what it needs: the first bytes of
/// each line (the event type), and the whole line while probing or for an `ERROR` event.
struct LineReader {
    state: Arc<WatcherState>,
    probing: Arc<AtomicBool>,
    head: Vec<u8>,
    line: Vec<u8>,
    /// Whether the current line is kept whole; decided once its head is complete.
    keep: Option<bool>,
}

const HEAD_LEN: usize = 24;

impl LineReader {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (seg, ended) = match memchr::memchr(b'\n', data) {
                Some(p) => (&data[..p], true),
                None => (data, false),
            };
            let mut rest = seg;
            if self.keep.is_none() {
                // Every byte of the line so far is in `head`.
                let take = (HEAD_LEN - self.head.len()).min(seg.len());
                self.head.extend_from_slice(&seg[..take]);
                rest = &seg[take..];
                if self.head.len() >= HEAD_LEN || ended {
                    let keep = self.probing.load(Ordering::Relaxed)
                        || self.head.starts_with(b"{\"type\":\"ERROR\"");
                    if keep {
                        self.line.extend_from_slice(&self.head);
                    }
                    self.keep = Some(keep);
                }
            }
            if self.keep == Some(true) {
                self.line.extend_from_slice(rest);
            }
            if ended {
                self.finish_line();
                data = &data[seg.len() + 1..];
            } else {
                data = &[];
            }
        }
    }

    fn finish_line(&mut self) {
        let t = now_ns();
        let keep = self.keep.take() == Some(true);
        let head = &self.head;
        if head.starts_with(b"{\"type\":\"ADDED\"")
            || head.starts_with(b"{\"type\":\"MODIFIED\"")
            || head.starts_with(b"{\"type\":\"DELETED\"")
        {
            self.state.events.fetch_add(1, Ordering::Relaxed);
            self.state.last_event_ns.store(t, Ordering::Relaxed);
            if keep && let Some(n) = probe_number(&self.line) {
                self.state.probe_ns.store(t, Ordering::Relaxed);
                self.state.probe_seen.fetch_max(n + 1, Ordering::Release);
            }
        } else if head.starts_with(b"{\"type\":\"BOOKMARK\"") {
            // Not requested, but harmless.
        } else {
            let text = if keep { &self.line } else { head };
            self.state.fail(format!(
                "unexpected watch line: {}",
                String::from_utf8_lossy(&text[..text.len().min(300)])
            ));
        }
        self.head.clear();
        self.line.clear();
    }
}

fn probe_number(line: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(line, PROBE_MARKER)?;
    let digits: Vec<u8> = line[at + PROBE_MARKER.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Decodes `Transfer-Encoding: chunked` and hands the payload to a [`LineReader`].
enum Chunked {
    Size(Vec<u8>),
    Data(usize),
    DataEnd(usize),
    Done,
}

impl Chunked {
    /// Returns false once the terminating chunk has been read.
    fn feed(&mut self, mut data: &[u8], lines: &mut LineReader) -> Result<bool> {
        while !data.is_empty() {
            match self {
                Chunked::Size(buf) => match memchr::memchr(b'\n', data) {
                    Some(p) => {
                        buf.extend_from_slice(&data[..p]);
                        data = &data[p + 1..];
                        let text = String::from_utf8_lossy(buf);
                        let hex = text.trim().split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16)
                            .map_err(|_| err(format!("bad chunk size line {text:?}")))?;
                        *self = if size == 0 {
                            Chunked::Done
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    None => {
                        buf.extend_from_slice(data);
                        if buf.len() > 64 {
                            return Err(err("chunk size line too long"));
                        }
                        data = &[];
                    }
                },
                Chunked::Data(left) => {
                    let take = (*left).min(data.len());
                    lines.feed(&data[..take]);
                    data = &data[take..];
                    *left -= take;
                    if *left == 0 {
                        *self = Chunked::DataEnd(2);
                    }
                }
                Chunked::DataEnd(left) => {
                    let take = (*left).min(data.len());
                    data = &data[take..];
                    *left -= take;
                    if *left == 0 {
                        *self = Chunked::Size(Vec::new());
                    }
                }
                Chunked::Done => return Ok(false),
            }
        }
        Ok(!matches!(self, Chunked::Done))
    }
}

/// Opens one watch and returns once the response headers are in; the stream is then read by a
/// background task until `stop` is set.
async fn open_watcher(
    sim: &Sim,
    path: &str,
    state: Arc<WatcherState>,
    probing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut stream = TcpStream::connect(sim.addr).await?;
    stream.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
        sim.addr, sim.token
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0usize;
    let header_end = loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return Err(err("watch connection closed before the response headers"));
        }
        have += n;
        if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if have == buf.len() {
            return Err(err("watch response headers too large"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(err(format!(
            "watch {path}: {}",
            String::from_utf8_lossy(&buf[..have.min(400)])
        )));
    }
    if !head.contains("transfer-encoding: chunked") {
        return Err(err(format!(
            "watch {path}: response is not chunked: {head}"
        )));
    }
    let rest = buf[header_end..have].to_vec();
    Ok(tokio::spawn(async move {
        let mut lines = LineReader {
            state: state.clone(),
            probing,
            head: Vec::with_capacity(HEAD_LEN),
            line: Vec::new(),
            keep: None,
        };
        let mut chunked = Chunked::Size(Vec::new());
        let mut result = chunked.feed(&rest, &mut lines);
        loop {
            match result {
                Ok(true) => {}
                Ok(false) => {
                    if !stop.load(Ordering::Relaxed) {
                        state.fail("the server ended the watch stream".into());
                    }
                    return;
                }
                Err(e) => {
                    state.fail(format!("bad chunked encoding: {e}"));
                    return;
                }
            }
            result = match stream.read(&mut buf).await {
                Ok(0) => {
                    if !stop.load(Ordering::Relaxed) {
                        state.fail("the server closed the watch stream".into());
                    }
                    return;
                }
                Ok(n) => chunked.feed(&buf[..n], &mut lines),
                Err(e) => {
                    if !stop.load(Ordering::Relaxed) {
                        state.fail(format!("watch read failed: {e}"));
                    }
                    return;
                }
            };
        }
    }))
}

struct Watchers {
    states: Vec<Arc<WatcherState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    probing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Watchers {
    async fn open(sim: &Sim, count: usize, from_rv: &str, bound: Duration) -> Result<Watchers> {
        let path =
            format!("{ALL_DEPLOYMENTS}?watch=true&resourceVersion={from_rv}&timeoutSeconds=3600");
        let probing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut states = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        let deadline = Instant::now() + bound;
        for _ in 0..count {
            let state = Arc::new(WatcherState::default());
            let open = open_watcher(sim, &path, state.clone(), probing.clone(), stop.clone());
            let task = tokio::time::timeout_at(deadline, open)
                .await
                .map_err(|_| {
                    err(format!(
                        "opening {count} watchers took longer than {} s",
                        bound.as_secs()
                    ))
                })??;
            states.push(state);
            tasks.push(task);
        }
        Ok(Watchers {
            states,
            tasks,
            probing,
            stop,
        })
    }

    fn check(&self) -> Result<()> {
        for (i, s) in self.states.iter().enumerate() {
            if let Some(f) = s.failure() {
                return Err(err(format!("watcher {i}: {f}")));
            }
        }
        Ok(())
    }

    /// Waits until every watcher has `want` events; returns `now_ns()` of the last one.
    async fn wait_events(&self, want: u64, bound: Duration) -> Result<u64> {
        let deadline = Instant::now() + bound;
        loop {
            self.check()?;
            let min = self
                .states
                .iter()
                .map(|s| s.events.load(Ordering::Relaxed))
                .min()
                .unwrap_or(want);
            if min >= want {
                break;
            }
            if Instant::now() >= deadline {
                return Err(err(format!(
                    "watchers did not receive all {want} events within {} s (slowest has {min})",
                    bound.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(self
            .states
            .iter()
            .map(|s| s.last_event_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0))
    }

    /// Waits until every watcher has seen probe `n`; returns `now_ns()` of the last sighting.
    async fn wait_probe(&self, n: u64, bound: Duration) -> Result<u64> {
        let deadline = Instant::now() + bound;
        loop {
            self.check()?;
            let behind = self
                .states
                .iter()
                .filter(|s| s.probe_seen.load(Ordering::Acquire) <= n)
                .count();
            if behind == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(err(format!(
                    "{behind} watchers did not see probe-{n:04} within {} s",
                    bound.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        Ok(self
            .states
            .iter()
            .map(|s| s.probe_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0))
    }

    fn close(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
        }
    }
}

// ----- statistics and the report -----------------------------------------------------------

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| format!(", {:.1} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .map(|l| format!(", load average {l}"))
        .unwrap_or_default();
    format!("nproc {cpus}, {model}{mem}{load}")
}

struct Row {
    measure: String,
    value: String,
    target: String,
    verdict: &'static str,
}

fn row(measure: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        target: String::new(),
        verdict: "",
    }
}

fn with_target(mut r: Row, target: impl Into<String>, met: bool) -> Row {
    r.target = target.into();
    r.verdict = if met { "met" } else { "MISSED" };
    r
}

fn render(rows: &[Row]) -> String {
    let w0 = rows
        .iter()
        .map(|r| r.measure.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let w1 = rows.iter().map(|r| r.value.len()).max().unwrap_or(0).max(6);
    let w2 = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {:w0$} | {:>w1$} | {:w2$} | {:6} |",
        "measure", "result", "target", ""
    );
    let _ = writeln!(
        out,
        "|-{}-|-{}-|-{}-|-{}-|",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(w2),
        "-".repeat(6)
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {:w0$} | {:>w1$} | {:w2$} | {:6} |",
            r.measure, r.value, r.target, r.verdict
        );
    }
    out
}

// ----- the phases ----------------------------------------------------------------------------

async fn baseline(bin: &Path, args: &Args, bound: Duration) -> Result<Vec<Row>> {
    eprintln!(
        "baseline: {} creates without watchers on a fresh server",
        args.objects
    );
    let sim = Sim::start(bin, args).await?;
    create_namespace(&sim).await?;
    let run = bulk_create(&sim, args.objects, args.concurrency, bound).await?;
    let mem = sim.memory()?;
    let cpu = sim.cpu_seconds()?;
    sim.stop().await?;
    let rate = args.objects as f64 / run.elapsed.as_secs_f64();
    let mut lat = run.latencies;
    lat.sort();
    Ok(vec![
        with_target(
            row(
                "create throughput, no watchers",
                format!("{rate:.0} writes/s"),
            ),
            format!(">= {TARGET_WRITES:.0} writes/s"),
            rate >= TARGET_WRITES,
        ),
        row(
            "  create latency p50 / p99",
            format!(
                "{:.2} / {:.2} ms",
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99))
            ),
        ),
        row("  server CPU for the run", format!("{cpu:.1} s")),
        row(
            "  server RSS after the run",
            format!("{:.0} MiB", mem.rss_mib),
        ),
    ])
}

#[allow(clippy::too_many_lines)]
async fn main_run(bin: &Path, args: &Args, bound: Duration) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let sim = Sim::start(bin, args).await?;
    create_namespace(&sim).await?;
    let idle = sim.memory()?;

    // Like an informer: list, then watch from the list's resourceVersion.
    let mut conn = Conn::open(&sim).await?;
    let empty = conn
        .expect(Method::GET, ALL_DEPLOYMENTS, Bytes::new(), StatusCode::OK)
        .await?;
    let empty: serde_json::Value = serde_json::from_slice(&empty)?;
    let rv = empty
        .pointer("/metadata/resourceVersion")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| err("list without metadata.resourceVersion"))?
        .to_string();
    eprintln!("opening {} watchers", args.watchers);
    let t = Instant::now();
    let watchers = Watchers::open(&sim, args.watchers, &rv, bound).await?;
    let open_time = t.elapsed();
    let with_watchers = sim.memory()?;

    eprintln!(
        "creating {} Deployments, {} in flight",
        args.objects, args.concurrency
    );
    let cpu0 = sim.cpu_seconds()?;
    let own0 = cpu_seconds("self")?;
    let run = bulk_create(&sim, args.objects, args.concurrency, bound).await?;
    let rate = args.objects as f64 / run.elapsed.as_secs_f64();
    let all_delivered = watchers.wait_events(args.objects as u64, bound).await?;
    let cpu1 = sim.cpu_seconds()?;
    let own1 = cpu_seconds("self")?;
    let drain = Duration::from_nanos(all_delivered.saturating_sub(run.finished_ns));
    let total = run.elapsed + drain;
    let after_load = sim.memory()?;
    let mut lat = run.latencies;
    lat.sort();
    rows.push(with_target(
        row(
            format!("create throughput, {} watchers", args.watchers),
            format!("{rate:.0} writes/s"),
        ),
        format!(">= {TARGET_WRITES:.0} writes/s"),
        rate >= TARGET_WRITES,
    ));
    rows.push(row(
        "  create latency p50 / p99",
        format!(
            "{:.2} / {:.2} ms",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        ),
    ));
    rows.push(row(
        "  every event at every watcher after",
        format!(
            "{:.2} s (+{:.2} s after the last create)",
            total.as_secs_f64(),
            drain.as_secs_f64()
        ),
    ));
    rows.push(row(
        "  events delivered, delivery rate",
        format!(
            "{} ({:.0}/s)",
            args.objects * args.watchers,
            (args.objects * args.watchers) as f64 / total.as_secs_f64()
        ),
    ));
    rows.push(row(
        "  CPU for the load: server / bench client",
        format!("{:.1} s / {:.1} s", cpu1 - cpu0, own1 - own0),
    ));
    rows.push(row(
        format!("  time to open {} watchers", args.watchers),
        format!("{:.2} s", open_time.as_secs_f64()),
    ));

    // Full LISTs of every object (the bench namespace holds exactly `objects` Deployments).
    eprintln!("listing {} Deployments {} times", args.objects, args.lists);
    let mut list_lat = Vec::with_capacity(args.lists);
    let list_deadline = Instant::now() + bound;
    // One more LIST than timed: the first is reported on its own (it also pays for the client's
    // first large allocations). The last one is checked item by item after the timing: parsing
    // allocates and frees some 100 MiB in the client, which would land in the next timed LIST.
    let mut first_list = Duration::ZERO;
    let mut last_body = Bytes::new();
    for i in 0..=args.lists {
        let t = Instant::now();
        let body = tokio::time::timeout_at(
            list_deadline,
            conn.expect(Method::GET, DEPLOYMENTS, Bytes::new(), StatusCode::OK),
        )
        .await
        .map_err(|_| {
            err(format!(
                "{} LISTs took longer than {} s",
                args.lists,
                bound.as_secs()
            ))
        })??;
        let took = t.elapsed();
        if i == 0 {
            first_list = took;
        } else {
            list_lat.push(took);
        }
        last_body = body;
    }
    let list_bytes = last_body.len();
    let listed: serde_json::Value = serde_json::from_slice(&last_body)?;
    let n = listed
        .get("items")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    if n != args.objects {
        return Err(err(format!(
            "LIST returned {n} items, wanted {}",
            args.objects
        )));
    }
    drop(listed);
    eprintln!(
        "  LIST latencies in order (ms): first {:.0}, then {}",
        ms(first_list),
        list_lat
            .iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    list_lat.sort();
    let p50 = percentile(&list_lat, 0.5);
    let p99 = percentile(&list_lat, 0.99);
    rows.push(with_target(
        row(
            format!("list of {} objects p50", args.objects),
            format!("{:.1} ms", ms(p50)),
        ),
        format!("< {TARGET_LIST_MS:.0} ms"),
        ms(p50) < TARGET_LIST_MS,
    ));
    rows.push(with_target(
        row(
            format!(
                "list of {} objects p99 ({} lists)",
                args.objects, args.lists
            ),
            format!("{:.1} ms", ms(p99)),
        ),
        format!("< {TARGET_LIST_MS:.0} ms"),
        ms(p99) < TARGET_LIST_MS,
    ));
    rows.push(row(
        "  first list (not in p50/p99)",
        format!("{:.1} ms", ms(first_list)),
    ));
    rows.push(row(
        "  list response size",
        format!("{:.1} MiB", list_bytes as f64 / 1024.0 / 1024.0),
    ));

    // Fan-out probes: one create at a time into a quiet server.
    eprintln!("timing the fan-out of {} single creates", args.probes);
    watchers.probing.store(true, Ordering::Relaxed);
    let mut fan_resp = Vec::with_capacity(args.probes);
    let mut fan_send = Vec::with_capacity(args.probes);
    let probe_bound = Duration::from_secs(10).min(bound);
    for n in 0..args.probes {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let name = format!("probe-{n:04}");
        let sent = now_ns();
        tokio::time::timeout(
            probe_bound,
            conn.expect(
                Method::POST,
                DEPLOYMENTS,
                deployment(&name, n),
                StatusCode::CREATED,
            ),
        )
        .await
        .map_err(|_| {
            err(format!(
                "creating {name} took longer than {} s",
                probe_bound.as_secs()
            ))
        })??;
        let answered = now_ns();
        let last = watchers.wait_probe(n as u64, probe_bound).await?;
        fan_resp.push(Duration::from_nanos(last.saturating_sub(answered)));
        fan_send.push(Duration::from_nanos(last.saturating_sub(sent)));
    }
    fan_resp.sort();
    fan_send.sort();
    if args.probes > 0 {
        rows.push(row(
            format!("watch fan-out to {} watchers p50", args.watchers),
            format!("{:.2} ms", ms(percentile(&fan_resp, 0.5))),
        ));
        rows.push(row(
            format!("watch fan-out max ({} probes)", args.probes),
            format!("{:.2} ms", ms(percentile(&fan_resp, 1.0))),
        ));
        rows.push(row(
            "  from request sent: p50 / max",
            format!(
                "{:.2} / {:.2} ms",
                ms(percentile(&fan_send, 0.5)),
                ms(percentile(&fan_send, 1.0))
            ),
        ));
    }

    let end = sim.memory()?;
    rows.push(with_target(
        row(
            "server RSS after the load",
            format!("{:.0} MiB", after_load.rss_mib),
        ),
        format!("< {TARGET_RSS_MIB:.0} MiB"),
        after_load.rss_mib < TARGET_RSS_MIB,
    ));
    rows.push(with_target(
        row("server peak RSS (VmHWM)", format!("{:.0} MiB", end.hwm_mib)),
        format!("< {TARGET_RSS_MIB:.0} MiB"),
        end.hwm_mib < TARGET_RSS_MIB,
    ));
    rows.push(row(
        "  RSS idle / with watchers / at the end",
        format!(
            "{:.0} / {:.0} / {:.0} MiB",
            idle.rss_mib, with_watchers.rss_mib, end.rss_mib
        ),
    ));
    watchers.check()?;
    watchers.close();
    sim.stop().await?;
    Ok(rows)
}

async fn run(args: Args) -> Result<()> {
    let bin = match &args.sim {
        Some(p) => p.clone(),
        None => PathBuf::from(env!("CARGO_BIN_EXE_ramp-sim")),
    };
    if args.objects == 0 || args.concurrency == 0 {
        return Err(err("--objects and --concurrency must be at least 1"));
    }
    let bound = Duration::from_secs(args.phase_timeout.max(1));
    let _ = now_ns();
    let machine = machine();
    let mut rows = Vec::new();
    if !args.no_baseline {
        rows.extend(baseline(&bin, &args, bound).await?);
    }
    rows.extend(main_run(&bin, &args, bound).await?);
    println!();
    println!("ramp-sim benchmark");
    println!("machine: {machine} at the start (the benchmark client shares these cores)");
    println!("server:  {}", bin.display());
    println!(
        "load:    {} Deployments, {} watch streams, {} creates in flight, {} LISTs, {} fan-out probes",
        args.objects, args.watchers, args.concurrency, args.lists, args.probes
    );
    if let Some(ms) = args.watch_coalesce_ms {
        println!("server:  --watch-coalesce-ms={ms}");
    }
    println!();
    print!("{}", render(&rows));
    let missed = rows.iter().filter(|r| r.verdict == "MISSED").count();
    println!();
    if missed == 0 {
        println!("all targets met");
    } else {
        println!("{missed} target(s) missed (reported, not asserted)");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sim-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sim-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
