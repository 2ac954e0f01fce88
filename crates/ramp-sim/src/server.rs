//! The HTTP API server (axum 0.8 / hyper 1) in front of the [`Store`].
//!
//! Routing is done by hand from the path, like the apiserver's request-info resolver:
//! `/api/v1/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]` and the same under
//! `/apis/{group}/{version}`, plus `/version`, discovery, OpenAPI v3 and health endpoints.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = ramp_sim::Server::start(ramp_sim::Store::new(), ramp_sim::ServerConfig::default()).await?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! println!("{}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::admission::{ServiceMap, UserInfo, WebhookGate, WriteTarget};
use crate::discovery;
use crate::errors::{ApiError, ApiResult};
use crate::faults::{self, Faults, RequestInfo, Stats};
use crate::list_body::ListBody;
use crate::openapi;
use crate::proto;
use crate::resources::{GroupResource, ResourceType};
use crate::store::{
    DeleteOptions, Deleted, FieldValidation, ListOptions, PatchType, Propagation, Store,
    Subresource, WatchOptions, WriteOptions, meta_str, split_api_version,
};
use crate::table::{self, IncludeObject};
use crate::telemetry::Telemetry;
use crate::watch::{WatchFormat, WatchStreamConfig, watch_body};

/// The user name in kubeconfigs written by the sim and in `SelfSubjectReview`s.
pub const ADMIN_USER: &str = "ramp-sim-admin";

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Bearer token written to the kubeconfig (the admin: full access). ServiceAccount tokens
    /// from TokenRequest are accepted too, under RBAC (see [`crate::auth`]); other tokens get
    /// 401; requests without an `Authorization` header are served as the admin (the sim is
    /// loopback-only).
    pub token: String,
    /// Largest accepted request body (413 beyond).
    pub max_body_bytes: usize,
    /// Interval between watch bookmarks (when a client allows them).
    pub bookmark_interval: Duration,
    /// Watch duration when the client gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Longest a watch stream holds back events to send them together while writes keep
    /// coming (see [`crate::watch::WatchStreamConfig::coalesce`]).
    pub watch_coalesce: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: format!("ramp-sim-{:016x}", rand::random::<u64>()),
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(10),
            default_watch_timeout: Duration::from_secs(30 * 60),
            watch_coalesce: crate::watch::COALESCE_WINDOW,
        }
    }
}

struct App {
    store: Store,
    config: ServerConfig,
    addr: SocketAddr,
    shutdown: CancellationToken,
    /// Admission webhooks (see `crate::admission::gate`).
    admission: WebhookGate,
    /// Injected faults and request accounting (`/sim/v1/faults`, `/sim/v1/stats`).
    faults: Faults,
    stats: Stats,
    /// Load streams and the mesh metrics (`/sim/v1/load`, `/metrics`).
    telemetry: Telemetry,
}

/// A running API server.
pub struct Server {
    app: Arc<App>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.app.addr)
            .finish()
    }
}

impl Server {
    /// Binds and starts serving in a background task.
    pub async fn start(store: Store, config: ServerConfig) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let telemetry = Telemetry::new(store.clone(), shutdown.child_token());
        let app = Arc::new(App {
            store,
            config,
            addr,
            shutdown: shutdown.clone(),
            admission: WebhookGate::new(ServiceMap::new(), admin_user_info()),
            faults: Faults::default(),
            stats: Stats::default(),
            telemetry,
        });
        let router = Router::new()
            .route("/sim/v1/route", axum::routing::post(route_requests))
            .fallback(handle)
            .with_state(app.clone())
            .merge(faults::router(app.faults.clone(), app.stats.clone()))
            .merge(app.telemetry.router());
        let stop = shutdown.clone();
        // Like Go's net/http (and so kube-apiserver): no Nagle delay on small responses and
        // watch chunks.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY");
            }
        });
        let task = tokio::spawn(async move {
            let res = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "ramp-sim server stopped");
            }
        });
        Ok(Server {
            app,
            task: Some(task),
        })
    }

    /// Routes for webhooks declared with `clientConfig.service`: map `namespace/name:port` to a
    /// loopback URL here (there is no cluster DNS).
    pub fn webhook_services(&self) -> &ServiceMap {
        self.app.admission.services()
    }

    /// The fault rules (also at `/sim/v1/faults`).
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    /// Request counts (also at `/sim/v1/stats`).
    pub fn stats(&self) -> &Stats {
        &self.app.stats
    }

    /// Load streams and mesh metrics (also at `/sim/v1/load` and `/metrics`).
    pub fn telemetry(&self) -> &Telemetry {
        &self.app.telemetry
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.app.addr
    }

    /// The store behind the server.
    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// The bearer token of the kubeconfig.
    pub fn token(&self) -> &str {
        &self.app.config.token
    }

    /// A kubeconfig (YAML) for this server: cluster, user `ramp-sim-admin` with the token,
    /// context `ramp-sim` (current), namespace `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url(), self.token())
    }

    /// Writes [`Server::kubeconfig_yaml`] to a file (mode 0600 on Unix).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.kubeconfig_yaml())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// Stops accepting requests, ends open watches and waits for the server task.
    pub async fn shutdown(mut self) {
        self.app.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.app.shutdown.cancel();
        if let Some(task) = self.task.take() {
            // Let graceful shutdown finish on its own; abort only if the runtime is going away.
            drop(task);
        }
    }
}

/// A kubeconfig document for `url` and `token`.
pub fn kubeconfig_yaml(url: &str, token: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ramp-sim", "cluster": {"server": url}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "ramp-sim", "context": {"cluster": "ramp-sim", "user": ADMIN_USER, "namespace": "default"}}],
        "current-context": "ramp-sim",
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

// ----- media types ---------------------------------------------------------------------------

/// One entry of an `Accept` / `Content-Type` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower case.
    pub essence: String,
    /// Parameters (`as=Table`, `g=meta.k8s.io`, ...).
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// A parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a comma-separated list of media types.
pub fn media_types(header: &str) -> Vec<MediaType> {
    header
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let mut it = part.split(';');
            let essence = it.next().unwrap_or_default().trim().to_ascii_lowercase();
            let params = it
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            MediaType { essence, params }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Object,
    Metadata,
    Table,
}

fn output_format(headers: &HeaderMap) -> ApiResult<Output> {
    let accept = header_str(headers, header::ACCEPT);
    if accept.trim().is_empty() {
        return Ok(Output::Object);
    }
    for m in media_types(accept) {
        match m.param("as") {
            Some("Table") if m.param("g") == Some("meta.k8s.io") => return Ok(Output::Table),
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if m.param("g") == Some("meta.k8s.io") =>
            {
                return Ok(Output::Metadata);
            }
            Some(_) => continue,
            None => {}
        }
        if matches!(
            m.essence.as_str(),
            "application/json"
                | "*/*"
                | "application/*"
                | "application/yaml"
                | "application/vnd.kubernetes.protobuf"
                | "application/json-seq"
                | "application/vnd.kubernetes.protobuf;stream=watch"
        ) {
            return Ok(Output::Object);
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {accept})"
    )))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

// ----- query ---------------------------------------------------------------------------------

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string, tolerating empty pairs (`?&limit=500`).
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("true" | "1" | "True"))
}

fn write_options(q: &HashMap<String, String>) -> ApiResult<WriteOptions> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_validation,
        field_manager: q.get("fieldManager").cloned().filter(|s| !s.is_empty()),
        force: truthy(q, "force"),
    })
}

// ----- responses -----------------------------------------------------------------------------

fn json_response(code: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn value_response(code: StatusCode, v: &Value) -> Response {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

/// The `Status` response for an error.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    value_response(code, &e.to_status())
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// Serializes an object as seen through `api_version` (no copy when it already matches).
fn object_bytes(obj: &Value, api_version: &str) -> Vec<u8> {
    if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version) {
        serde_json::to_vec(obj).unwrap_or_default()
    } else {
        let mut o = obj.clone();
        o["apiVersion"] = json!(api_version);
        serde_json::to_vec(&o).unwrap_or_default()
    }
}

/// Like [`object_bytes`] for an object the store handed out: in its stored `apiVersion` the
/// store's cached JSON is used (and kept for the LISTs and watch events that follow).
fn stored_bytes(store: &Store, gr: &GroupResource, obj: &Arc<Value>, api_version: &str) -> Bytes {
    if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version) {
        store.object_json(gr, obj)
    } else {
        Bytes::from(object_bytes(obj, api_version))
    }
}

// ----- routing -------------------------------------------------------------------------------

struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
    watch_prefix: bool,
}

fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let mut rest = rest;
    let mut watch_prefix = false;
    if rest.first() == Some(&"watch") {
        watch_prefix = true;
        rest = &rest[1..];
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
    {
        namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    if rest.is_empty() || rest.len() > 3 {
        return None;
    }
    Some(ResourcePath {
        group: group.into(),
        version: version.into(),
        namespace,
        resource: rest[0].into(),
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
        watch_prefix,
    })
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let info = RequestInfo::classify(
        &method,
        uri.path(),
        uri.query(),
        header_str(req.headers(), header::USER_AGENT),
    );
    let decision = app.faults.decide(&info);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let r = match decision.error {
        Some(e) => {
            tracing::debug!(%method, %uri, status = e.code, "injected fault");
            faults::fault_response(&e)
        }
        None => match dispatch(&app, req).await {
            Ok(r) => {
                tracing::debug!(%method, %uri, status = r.status().as_u16(), "request");
                match decision.close_watch_after {
                    Some(after) if r.status() == StatusCode::OK => {
                        faults::close_body_after(r, after)
                    }
                    _ => r,
                }
            }
            Err(e) => {
                tracing::debug!(%method, %uri, status = e.code, reason = e.reason, message = %e.message, "request failed");
                error_response(&e)
            }
        },
    };
    if !uri.path().starts_with("/sim/") {
        app.stats.record(&info, r.status().as_u16());
        app.faults.answered(&info);
    }
    r
}

/// `POST /sim/v1/route`: where N requests go through the embedded mesh (a
/// [`crate::mesh::RouteQuery`] in, a [`crate::mesh::RouteReport`] out).
async fn route_requests(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let query: crate::mesh::RouteQuery = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => {
            return error_response(&ApiError::new(
                400,
                "BadRequest",
                format!("invalid route query: {e}"),
            ));
        }
    };
    match query.run(&app.store) {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => error_response(&ApiError::new(400, "BadRequest", e.to_string())),
    }
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn dispatch(app: &Arc<App>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    // Authentication and RBAC (crate::auth): 401/403 before anything is read or written.
    let (user, attrs) = crate::auth::check(
        &app.store,
        &parts.headers,
        &parts.method,
        &parts.uri,
        &app.config.token,
    )?;
    if crate::auth::is_review(&attrs) {
        let obj = decode_body(
            &parts.headers,
            &read_body(app, &parts.headers, body).await?,
            false,
        )?;
        let review = crate::auth::access_review(&app.store, &user, &attrs, obj, &app.config.token)?;
        return Ok(value_response(StatusCode::CREATED, &review));
    }
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query = parse_query(parts.uri.query());
    let headers = parts.headers;
    let method = parts.method;
    let accept = header_str(&headers, header::ACCEPT).to_string();
    let get_only = |m: &Method| -> ApiResult<()> {
        if m == Method::GET || m == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(format!(
                "{m} is not allowed on {path}"
            )))
        }
    };
    let types = || app.store.resource_types();
    match segs.as_slice() {
        ["version"] => {
            get_only(&method)?;
            Ok(value_response(StatusCode::OK, &version_info()))
        }
        ["healthz" | "livez" | "readyz", ..] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(r)
        }
        ["api"] => {
            get_only(&method)?;
            if discovery::wants_aggregated(&accept) {
                Ok(aggregated_response(&discovery::aggregated(&types(), true)))
            } else {
                Ok(value_response(
                    StatusCode::OK,
                    &discovery::api_versions(&app.addr.to_string()),
                ))
            }
        }
        ["apis"] => {
            get_only(&method)?;
            if discovery::wants_aggregated(&accept) {
                Ok(aggregated_response(&discovery::aggregated(&types(), false)))
            } else {
                Ok(value_response(
                    StatusCode::OK,
                    &discovery::api_group_list(&types()),
                ))
            }
        }
        ["api", version] => {
            get_only(&method)?;
            discovery::api_resource_list(&types(), "", version)
                .map(|v| value_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path)
        }
        ["apis", group] => {
            get_only(&method)?;
            discovery::api_group(&types(), group)
                .map(|v| value_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path)
        }
        ["apis", group, version] => {
            get_only(&method)?;
            discovery::api_resource_list(&types(), group, version)
                .map(|v| value_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path)
        }
        ["openapi", "v3"] => {
            get_only(&method)?;
            Ok(value_response(StatusCode::OK, &openapi::index(&types())))
        }
        ["openapi", "v3", "api", version] => {
            get_only(&method)?;
            openapi_doc(&types(), "", version)
        }
        ["openapi", "v3", "apis", group, version] => {
            get_only(&method)?;
            openapi_doc(&types(), group, version)
        }
        ["api", version, rest @ ..] => {
            let rp = parse_resource_path("", version, rest).ok_or_else(not_found_path)?;
            resource_request(app, method, headers, query, rp, body).await
        }
        ["apis", group, version, rest @ ..] => {
            let rp = parse_resource_path(group, version, rest).ok_or_else(not_found_path)?;
            resource_request(app, method, headers, query, rp, body).await
        }
        _ => Err(not_found_path()),
    }
}

fn openapi_doc(types: &[Arc<ResourceType>], group: &str, version: &str) -> ApiResult<Response> {
    if !types.iter().any(|t| t.group == group && t.serves(version)) {
        return Err(not_found_path());
    }
    Ok(value_response(
        StatusCode::OK,
        &openapi::document(types, group, version),
    ))
}

fn aggregated_response(v: &Value) -> Response {
    let mut r = value_response(StatusCode::OK, v);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_V2),
    );
    r
}

/// `GET /version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-ramp-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

async fn read_body(app: &App, headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let limit = app.config.max_body_bytes;
    let too_large =
        || ApiError::too_large(format!("Request entity too large: limit is {limit} bytes"));
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// Decodes a request body by its content type (JSON, YAML or Kubernetes protobuf).
fn decode_body(headers: &HeaderMap, bytes: &[u8], yaml_default: bool) -> ApiResult<Value> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if proto::is_protobuf(ct) {
        return proto::decode(bytes).map_err(|e| {
            let msg = format!("unable to decode protobuf body: {e}");
            if e.code() == 415 {
                ApiError::unsupported_media_type(msg)
            } else {
                ApiError::bad_request(msg)
            }
        });
    }
    let essence = media_types(ct)
        .first()
        .map(|m| m.essence.clone())
        .unwrap_or_default();
    let yaml = yaml_default || essence == "application/yaml" || essence.ends_with("+yaml");
    if yaml {
        let v: Value = serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return Ok(v);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

fn list_prefix(kind: &str, api_version: &str, meta: &Value) -> Vec<u8> {
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut buf, kind);
    buf.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut buf, api_version);
    buf.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut buf, meta);
    buf.extend_from_slice(b",\"items\":[");
    buf
}

fn list_meta(rv: u64, cont: Option<&str>, remaining: Option<u64>) -> Value {
    let mut m = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        m["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

#[allow(clippy::too_many_lines)]
async fn resource_request(
    app: &Arc<App>,
    method: Method,
    headers: HeaderMap,
    query: HashMap<String, String>,
    rp: ResourcePath,
    body: Body,
) -> ApiResult<Response> {
    let store = &app.store;
    let rt = store
        .resolve(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(|| {
            let gr = GroupResource::new(rp.group.clone(), rp.resource.clone());
            ApiError::not_found(&rp.group, &rp.resource, rp.name.as_deref().unwrap_or(""))
                .with_message(format!(
                    "the server could not find the requested resource ({gr} in version {})",
                    rp.version
                ))
        })?;
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(not_found_path());
    }
    let gr = rt.group_resource();
    let ns = rp.namespace.as_deref();
    let api_version = rt.api_version(&rp.version);
    if rp.subresource.as_deref() == Some("token")
        && gr == GroupResource::new("", "serviceaccounts")
        && method == Method::POST
        && let Some(name) = rp.name.as_deref()
    {
        // TokenRequest (`kubectl create token`): a token for an existing ServiceAccount.
        let sa = store.get(&gr, ns, name)?;
        let bytes = read_body(app, &headers, body).await?;
        let req = decode_body(&headers, &bytes, false)?;
        let token = crate::resources::token_request(&sa, req)?;
        return Ok(value_response(StatusCode::CREATED, &token));
    }
    let sub = match rp.subresource.as_deref() {
        None => None,
        Some("status") if rt.has_status(&rp.version) => Some(Subresource::Status),
        Some("scale") if rt.scale(&rp.version).is_some() => Some(Subresource::Scale),
        Some(other) => {
            return Err(ApiError::not_found(
                &rp.group,
                &format!("{}/{other}", rp.resource),
                rp.name.as_deref().unwrap_or(""),
            ));
        }
    };
    let is_watch = rp.watch_prefix || truthy(&query, "watch");

    if !rt.stored {
        if method == Method::POST && rp.name.is_none() {
            let bytes = read_body(app, &headers, body).await?;
            let obj = match decode_body(&headers, &bytes, false) {
                Ok(o) => o,
                // Reviews only need an answer ("allowed"): when a client sends a protobuf
                // review the decoder does not know, answer it without echoing the spec.
                Err(_) if proto::is_protobuf(header_str(&headers, header::CONTENT_TYPE)) => {
                    json!({})
                }
                Err(e) => return Err(e),
            };
            return Ok(value_response(
                StatusCode::CREATED,
                &review_response(&rt, &api_version, obj, &app.config.token)?,
            ));
        }
        return Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {gr}: only create"
        )));
    }

    match (method.clone(), rp.name.as_deref()) {
        (Method::GET, None) | (Method::GET, Some(_)) if is_watch => {
            let mut field_selector = query.get("fieldSelector").cloned().unwrap_or_default();
            if let Some(name) = rp.name.as_deref() {
                if !field_selector.is_empty() {
                    field_selector.push(',');
                }
                field_selector.push_str(&format!("metadata.name={name}"));
            }
            let opts = WatchOptions {
                resource_version: query.get("resourceVersion").cloned(),
                label_selector: query.get("labelSelector").cloned(),
                field_selector: Some(field_selector).filter(|s| !s.is_empty()),
                send_initial_events: truthy(&query, "sendInitialEvents"),
            };
            let format = match output_format(&headers)? {
                Output::Object => WatchFormat::Object,
                Output::Metadata => WatchFormat::Metadata,
                Output::Table => WatchFormat::Table(IncludeObject::parse(
                    query.get("includeObject").map(String::as_str),
                )),
            };
            let timeout = match query.get("timeoutSeconds").filter(|s| !s.is_empty()) {
                Some(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid timeoutSeconds: {s:?}"))
                })?),
                None => app.config.default_watch_timeout,
            };
            let watch = store.watch(&gr, ns, &opts);
            // Errors other than 410 are reported as plain HTTP errors.
            if let Err(e) = &watch
                && e.code != 410
            {
                return Err(e.clone());
            }
            let cfg = WatchStreamConfig {
                rt: rt.clone(),
                version: rp.version.clone(),
                timeout,
                bookmarks: truthy(&query, "allowWatchBookmarks"),
                bookmark_interval: app.config.bookmark_interval,
                format,
                coalesce: app.config.watch_coalesce,
            };
            let body = watch_body(store.clone(), watch, cfg, app.shutdown.clone());
            let mut r = Response::new(body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            Ok(r)
        }
        (Method::GET | Method::HEAD, None) => {
            let opts = ListOptions {
                label_selector: query.get("labelSelector").cloned(),
                field_selector: query.get("fieldSelector").cloned(),
                limit: match query.get("limit").filter(|s| !s.is_empty()) {
                    Some(l) => Some(
                        l.parse::<usize>()
                            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
                    ),
                    None => None,
                },
                continue_token: query.get("continue").cloned(),
            };
            let format = output_format(&headers)?;
            let list = store.list(&gr, ns, &opts)?;
            let meta = list_meta(
                list.resource_version,
                list.continue_token.as_deref(),
                list.remaining,
            );
            match format {
                Output::Table => {
                    let include =
                        IncludeObject::parse(query.get("includeObject").map(String::as_str));
                    Ok(value_response(
                        StatusCode::OK,
                        &table::table(&rt, &rp.version, &list.items, include, meta, true),
                    ))
                }
                Output::Metadata => {
                    let items: Vec<Value> = list
                        .items
                        .iter()
                        .map(|o| table::partial_metadata(o))
                        .collect();
                    Ok(value_response(
                        StatusCode::OK,
                        &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                "metadata": meta, "items": items}),
                    ))
                }
                Output::Object => {
                    // Each object's JSON is cached in the store: a LIST sends those bytes in
                    // chunks (see `ListBody`) instead of serializing every object again.
                    let items: Vec<Bytes> = list
                        .items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let stored_version = item.get("apiVersion").and_then(Value::as_str)
                                == Some(api_version.as_str());
                            match stored_version.then(|| list.item_json(i)).flatten() {
                                Some(json) => json,
                                None => Bytes::from(object_bytes(item, &api_version)),
                            }
                        })
                        .collect();
                    let prefix = list_prefix(&rt.list_kind, &api_version, &meta);
                    let body = ListBody::new(prefix.into(), items, Bytes::from_static(b"]}"));
                    let mut r = Response::new(Body::new(body));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok(r)
                }
            }
        }
        (Method::GET | Method::HEAD, Some(name)) => {
            let format = output_format(&headers)?;
            if sub == Some(Subresource::Scale) {
                let scale = store.get_scale(&gr, ns, name)?;
                return Ok(value_response(StatusCode::OK, &scale));
            }
            let obj = store.get(&gr, ns, name)?;
            match format {
                Output::Table => {
                    let include =
                        IncludeObject::parse(query.get("includeObject").map(String::as_str));
                    let meta = json!({"resourceVersion": meta_str(&obj, "resourceVersion")});
                    Ok(value_response(
                        StatusCode::OK,
                        &table::table(&rt, &rp.version, &[obj], include, meta, true),
                    ))
                }
                Output::Metadata => Ok(value_response(
                    StatusCode::OK,
                    &table::partial_metadata(&obj),
                )),
                Output::Object => Ok(json_response(
                    StatusCode::OK,
                    stored_bytes(store, &gr, &obj, &api_version),
                )),
            }
        }
        (Method::POST, None) => {
            let opts = write_options(&query)?;
            let bytes = read_body(app, &headers, body).await?;
            let obj = decode_body(&headers, &bytes, false)?;
            let w = app
                .admission
                .create(store, write_target(&rt, &rp.version, ns, sub), obj, &opts)
                .await?;
            Ok(with_warnings(
                json_response(
                    StatusCode::CREATED,
                    stored_bytes(store, &gr, &w.object, &api_version),
                ),
                &w.warnings,
            ))
        }
        (Method::PUT, Some(name)) => {
            let opts = write_options(&query)?;
            let bytes = read_body(app, &headers, body).await?;
            let obj = decode_body(&headers, &bytes, false)?;
            let target = write_target(&rt, &rp.version, ns, sub);
            let w = app
                .admission
                .update(store, target, name, obj, &opts)
                .await?;
            let out = if sub == Some(Subresource::Scale) {
                store.get_scale(&gr, ns, name)?
            } else {
                Value::Null
            };
            let body = if out.is_null() {
                stored_bytes(store, &gr, &w.object, &api_version)
            } else {
                Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
            };
            Ok(with_warnings(
                json_response(
                    if w.created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    body,
                ),
                &w.warnings,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let ct = header_str(&headers, header::CONTENT_TYPE);
            let patch_type = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
                ))
            })?;
            let opts = write_options(&query)?;
            let bytes = read_body(app, &headers, body).await?;
            let patch = if patch_type == PatchType::Apply {
                decode_body(&HeaderMap::new(), &bytes, true)?
            } else {
                serde_json::from_slice::<Value>(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            };
            let target = write_target(&rt, &rp.version, ns, sub);
            let w = app
                .admission
                .patch(store, target, name, patch_type, &patch, &opts)
                .await?;
            let body = if sub == Some(Subresource::Scale) {
                Bytes::from(
                    serde_json::to_vec(&store.get_scale(&gr, ns, name)?).unwrap_or_default(),
                )
            } else {
                stored_bytes(store, &gr, &w.object, &api_version)
            };
            Ok(with_warnings(
                json_response(
                    if w.created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    body,
                ),
                &w.warnings,
            ))
        }
        (Method::DELETE, name) => {
            let bytes = read_body(app, &headers, body).await?;
            let opts = delete_options(&headers, &bytes, &query)?;
            if let Some(name) = name {
                let old = store.get(&gr, ns, name)?;
                let options = delete_options_object(&headers, &bytes);
                let target = write_target(&rt, &rp.version, ns, sub);
                app.admission
                    .admit_delete(store, target, &old, options, opts.dry_run)
                    .await?;
            }
            match name {
                Some(name) => match store.delete(&gr, ns, name, &opts)? {
                    Deleted::Pending(obj) => Ok(json_response(
                        StatusCode::OK,
                        object_bytes(&obj, &api_version),
                    )),
                    Deleted::Gone(obj) => Ok(value_response(
                        StatusCode::OK,
                        &json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success",
                            "details": {"name": name, "group": rt.group, "kind": rt.resource,
                                        "uid": meta_str(&obj, "uid")},
                        }),
                    )),
                },
                None => {
                    let list = ListOptions {
                        label_selector: query.get("labelSelector").cloned(),
                        field_selector: query.get("fieldSelector").cloned(),
                        ..Default::default()
                    };
                    let target = write_target(&rt, &rp.version, ns, sub);
                    if app.admission.may_apply_delete(store, target)? {
                        let options = delete_options_object(&headers, &bytes);
                        for old in store.list(&gr, ns, &list)?.items {
                            app.admission
                                .admit_delete(store, target, &old, options.clone(), opts.dry_run)
                                .await?;
                        }
                    }
                    let deleted = store.delete_collection(&gr, ns, &list, &opts)?;
                    let meta = list_meta(store.resource_version(), None, None);
                    let mut buf = list_prefix(&rt.list_kind, &api_version, &meta);
                    for (i, item) in deleted.iter().enumerate() {
                        if i > 0 {
                            buf.push(b',');
                        }
                        buf.extend_from_slice(&object_bytes(item, &api_version));
                    }
                    buf.extend_from_slice(b"]}");
                    Ok(json_response(StatusCode::OK, buf))
                }
            }
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported here for {gr}"
        ))),
    }
}

/// The target of a write, for admission.
fn write_target<'a>(
    rt: &'a ResourceType,
    version: &'a str,
    namespace: Option<&'a str>,
    subresource: Option<Subresource>,
) -> WriteTarget<'a> {
    WriteTarget {
        rt,
        version,
        namespace,
        subresource,
    }
}

/// Who every request is (the sim authenticates one user), as AdmissionReview `userInfo`.
fn admin_user_info() -> UserInfo {
    UserInfo {
        username: ADMIN_USER.to_string(),
        uid: "ramp-sim-admin".to_string(),
        groups: vec![
            "system:masters".to_string(),
            "system:authenticated".to_string(),
        ],
        extra: Default::default(),
    }
}

/// The DeleteOptions body as sent (for AdmissionReview `options`), if it was JSON.
fn delete_options_object(headers: &HeaderMap, bytes: &[u8]) -> Option<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    decode_body(headers, bytes, false).ok()
}

fn delete_options(
    headers: &HeaderMap,
    bytes: &[u8],
    query: &HashMap<String, String>,
) -> ApiResult<DeleteOptions> {
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        let v = decode_body(headers, bytes, false)?;
        if let Some(kind) = v.get("kind").and_then(Value::as_str)
            && kind != "DeleteOptions"
        {
            return Err(ApiError::bad_request(format!(
                "the body of a DELETE must be a DeleteOptions, not a {kind}"
            )));
        }
        v
    };
    let policy_str = query
        .get("propagationPolicy")
        .cloned()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(String::from)
        });
    let orphan = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
    let propagation = match policy_str.as_deref() {
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        None => match orphan {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => None,
        },
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All")
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOptions {
        propagation,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
        dry_run,
    })
}

fn review_response(
    rt: &ResourceType,
    api_version: &str,
    obj: Value,
    token: &str,
) -> ApiResult<Value> {
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource ({})",
            rt.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        let (g, _) = split_api_version(av);
        if g != rt.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            )));
        }
    }
    let user = json!({"username": ADMIN_USER, "uid": "ramp-sim-admin",
                      "groups": ["system:masters", "system:authenticated"]});
    let mut out = obj;
    out["apiVersion"] = json!(api_version);
    out["kind"] = json!(rt.kind);
    let meta = out.get("metadata").cloned().unwrap_or(json!({}));
    out["metadata"] = meta;
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["status"] = match rt.kind.as_str() {
        "SelfSubjectReview" => json!({"userInfo": user}),
        "TokenReview" => {
            let given = out
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if given == token {
                json!({"authenticated": true, "user": user, "audiences": out.pointer("/spec/audiences").cloned().unwrap_or(json!([]))})
            } else {
                json!({"authenticated": false, "error": "invalid bearer token"})
            }
        }
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({"allowed": true, "reason": "ramp-sim authorizes every request"}),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tolerates_empty_pairs_and_decodes() {
        let q = parse_query(Some(
            "&limit=500&labelSelector=app%3Dweb%2Ctier+in+(a)&&watch",
        ));
        assert_eq!(q["limit"], "500");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "");
    }

    #[test]
    fn resource_paths() {
        let p = parse_resource_path(
            "apps",
            "v1",
            &["namespaces", "ns", "deployments", "d", "scale"],
        )
        .unwrap();
        assert_eq!(p.namespace.as_deref(), Some("ns"));
        assert_eq!(p.resource, "deployments");
        assert_eq!(p.subresource.as_deref(), Some("scale"));
        let p = parse_resource_path("", "v1", &["namespaces", "ns"]).unwrap();
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        let p = parse_resource_path("", "v1", &["namespaces", "ns", "status"]).unwrap();
        assert_eq!(p.subresource.as_deref(), Some("status"));
        let p = parse_resource_path("", "v1", &["watch", "namespaces", "ns", "pods"]).unwrap();
        assert!(p.watch_prefix);
        assert_eq!(p.resource, "pods");
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            ),
        );
        assert_eq!(output_format(&h).unwrap(), Output::Table);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf, */*"),
        );
        assert_eq!(output_format(&h).unwrap(), Output::Object);
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(output_format(&h).unwrap_err().code, 406);
    }
}
