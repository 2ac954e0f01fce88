//! `kubectl ramp dashboard`: a local web app showing the rollouts live.
//!
//! - [`state`]: kube-runtime watchers keep a bounded in-memory snapshot;
//! - [`view`]: the pages' JSON, built from the snapshot with [`crate::model`];
//! - [`events`]: Server-Sent Events pushing a page's JSON on every change;
//! - this module: the axum server, the embedded assets and the actions,
//!   which run through [`crate::run::execute`] like the CLI's.
//!
//! Routes: `GET /` (the app), `/assets/*`, `GET /api/rollouts`,
//! `GET /api/rollouts/{ns}/{name}`, `GET /api/stream` (SSE of the list),
//! `GET /api/rollouts/{ns}/{name}/stream` (SSE of one rollout),
//! `GET /api/rollouts/{ns}/{name}/prometheus` (the analysis metrics over
//! the last 15 minutes, when Prometheus is reachable), `GET /api/stats`,
//! `POST /api/rollouts/{ns}/{name}/actions/{action}`.

pub mod events;
pub mod prometheus;
pub mod state;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ramp_api::StepState;
use serde::Deserialize;
use serde_json::json;

use crate::actions::{Action, Seen};
use crate::cli::DashboardArgs;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use state::{Scope, Store};

/// Header every action request must carry. A page on another origin cannot
/// set it without a CORS preflight, which this server never grants, so a
/// foreign web page cannot make the browser act on the cluster.
pub const ACTION_HEADER: &str = "x-ramp-dashboard";

/// Options of a running dashboard.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address and port to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// Refuse actions, show no buttons.
    pub read_only: bool,
    /// Prometheus for Rollouts that name none.
    pub prometheus_url: Option<String>,
}

struct App {
    cluster: Cluster,
    store: Arc<Store>,
    opts: Options,
    prometheus: prometheus::Prometheus,
}

/// A dashboard serving in the background.
pub struct Running {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The snapshot it serves.
    pub store: Arc<Store>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds, starts the watchers and serves in the background.
pub async fn start(cluster: Cluster, opts: Options) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Io(format!("listening on {}: {e}", opts.listen)))?;
    let store = Arc::new(Store::default());
    let mut tasks = state::spawn_watchers(
        store.clone(),
        Scope {
            client: cluster.client.clone(),
            namespace: opts.namespace.clone(),
        },
    );
    let app = Arc::new(App {
        cluster,
        store: store.clone(),
        opts,
        prometheus: prometheus::Prometheus::default(),
    });
    let router = router(app);
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("error: the dashboard server stopped: {e}");
        }
    }));
    Ok(Running { addr, store, tasks })
}

/// `kubectl ramp dashboard`: serve until interrupted.
pub async fn serve(cluster: Cluster, args: DashboardArgs) -> Result<()> {
    let namespace = (!args.all_namespaces).then(|| cluster.namespace.clone());
    let opts = Options {
        listen: SocketAddr::new(args.address, args.port),
        namespace: namespace.clone(),
        read_only: args.read_only,
        prometheus_url: args.prometheus_url.clone(),
    };
    let running = start(cluster, opts).await?;
    let url = if running.addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}/", running.addr.port())
    } else {
        running.url()
    };
    let scope = match &namespace {
        Some(ns) => format!("namespace '{ns}'"),
        None => "all namespaces".into(),
    };
    let mode = if args.read_only { ", read-only" } else { "" };
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "ramp dashboard for {scope}{mode}: {url}\n(Ctrl-C to stop)"
        );
        let _ = out.flush();
    }
    if args.open {
        open_browser(&url);
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Error::Io(format!("waiting for Ctrl-C: {e}")))?;
    drop(running);
    Ok(())
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("warning: could not run {opener} to open {url}: {e}");
    }
}

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const CHARTS_JS: &str = include_str!("../../assets/dashboard/charts.js");
const STYLE_CSS: &str = include_str!("../../assets/dashboard/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/charts.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHARTS_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/rollouts", get(list))
        .route("/api/stream", get(events::list_stream))
        .route("/api/stats", get(stats))
        .route("/api/rollouts/{ns}/{name}", get(one))
        .route(
            "/api/rollouts/{ns}/{name}/stream",
            get(events::rollout_stream),
        )
        .route("/api/rollouts/{ns}/{name}/prometheus", get(series))
        .route("/api/rollouts/{ns}/{name}/actions/{action}", post(act))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            check_host,
        ))
        .with_state(app)
}

/// On a loopback address, only requests naming it (or `localhost`) in
/// `Host` are answered: a web page whose domain was rebound to 127.0.0.1
/// cannot read the rollouts or act through the user's browser.
async fn check_host(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let listen = app.opts.listen;
    if listen.ip().is_loopback() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let name = host
            .rsplit_once(':')
            .map_or(host, |(n, _)| n)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ok = name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !ok {
            return problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!(
                    "the dashboard answers requests for localhost only, not for host '{host}'"
                ),
            );
        }
    }
    next.run(req).await
}

async fn list(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(view::list(&app.store.read(), jiff::Timestamp::now()))
}

async fn stats(State(app): State<Arc<App>>) -> Json<state::Sizes> {
    Json(app.store.sizes())
}

fn not_found(ns: &str, name: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("rollout '{name}' not found in namespace '{ns}'"),
    )
}

async fn one(State(app): State<Arc<App>>, Path((ns, name)): Path<(String, String)>) -> Response {
    let key = (ns, name);
    match view::rollout(
        &app.store.read(),
        &key,
        jiff::Timestamp::now(),
        app.opts.read_only,
    ) {
        Some(v) => Json(v).into_response(),
        None => not_found(&key.0, &key.1),
    }
}

async fn series(State(app): State<Arc<App>>, Path((ns, name)): Path<(String, String)>) -> Response {
    let ro = app
        .store
        .read()
        .rollouts
        .get(&(ns.clone(), name.clone()))
        .cloned();
    match ro {
        Some(ro) => Json(
            app.prometheus
                .series(
                    &ro,
                    app.opts.prometheus_url.as_deref(),
                    jiff::Timestamp::now().as_second(),
                )
                .await,
        )
        .into_response(),
        None => not_found(&ns, &name),
    }
}

fn problem(code: StatusCode, kind: &str, message: &str) -> Response {
    (
        code,
        Json(json!({"ok": false, "kind": kind, "message": message})),
    )
        .into_response()
}

/// The body of an action request: the step the page showed when the user
/// asked (the guard pins it) and, for approve, `force`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionRequest {
    /// `currentStepIndex` shown.
    pub step: Option<i32>,
    /// `currentStepState` shown.
    pub state: Option<StepState>,
    /// Approve while analysis fails.
    #[serde(default)]
    pub force: bool,
}

async fn act(
    State(app): State<Arc<App>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if app.opts.read_only {
        return problem(
            StatusCode::FORBIDDEN,
            "read_only",
            "the dashboard is read-only (started with --read-only): actions are disabled",
        );
    }
    if headers.get(ACTION_HEADER).is_none() {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("action requests must carry the {ACTION_HEADER} header"),
        );
    }
    if app.opts.namespace.as_ref().is_some_and(|n| n != &ns) {
        return not_found(&ns, &name);
    }
    // `approve-force` is `approve` with `"force": true` (the page's "Approve anyway").
    let forced = action == "approve-force";
    let name_of_action = if forced { "approve" } else { action.as_str() };
    let Some(mut action) = Action::from_name(name_of_action) else {
        return problem(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "unknown action '{action}' (one of: {})",
                Action::NAMES.join(", ")
            ),
        );
    };
    let req: ActionRequest = if body.is_empty() {
        ActionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "usage",
                    &format!(
                        "the body of action '{}' on rollout '{name}' is not valid: {e}",
                        action_name(action)
                    ),
                );
            }
        }
    };
    if let Action::Approve { force, .. } = &mut action {
        *force = req.force || forced;
    }
    let seen = match (req.step, req.state) {
        (Some(step), Some(state)) => Some(Seen { step, state }),
        _ => None,
    };
    let mut cluster = app.cluster.clone();
    cluster.namespace = ns;
    match crate::run::execute(&cluster, &name, action, seen).await {
        Ok(out) => {
            Json(json!({"ok": true, "message": out.done, "warnings": out.warnings})).into_response()
        }
        Err(e) => {
            let code = match &e {
                Error::Refused(_) | Error::Race(_) | Error::OperatorStalled(_) => {
                    StatusCode::CONFLICT
                }
                Error::NotFound(_) | Error::CrdMissing(_) => StatusCode::NOT_FOUND,
                Error::Forbidden(_) => StatusCode::FORBIDDEN,
                Error::Usage(_) | Error::Invalid(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            problem(code, e.kind(), &e.to_string())
        }
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Approve { .. } => "approve",
        Action::PromoteFull => "promote-full",
        Action::Abort => "abort",
        Action::Retry => "retry",
        Action::Pause => "pause",
        Action::Resume => "resume",
        Action::Undo => "undo",
    }
}
