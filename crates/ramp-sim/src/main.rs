//! `ramp-sim`: the embedded Kubernetes-compatible API server as a command.
//!
//! ```text
//! ramp-sim serve --listen 127.0.0.1:0 --kubeconfig ./kubeconfig --crds ../shared/crds
//! ramp-sim load start --kubeconfig ./kubeconfig -n shop --host web --rps 200
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ramp_sim::{Server, ServerConfig, Store, load_manifests};

#[derive(Debug, Parser)]
#[command(
    name = "ramp-sim",
    version,
    about = "An in-memory, Kubernetes-compatible API server for tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Kubernetes API over plain HTTP until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Send requests through the embedded mesh and report where they went.
    Route(RouteArgs),
    /// Background request streams of a running sim (they feed its /metrics).
    #[command(subcommand)]
    Load(LoadCommand),
}

#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// Start a steady request stream; prints its id.
    Start(LoadStartArgs),
    /// List the running streams and what they sent.
    List(LoadListArgs),
    /// Stop a stream (or every stream with --all).
    Stop(LoadStopArgs),
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Kubeconfig of a running ramp-sim (default: $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
}

#[derive(Debug, clap::Args)]
struct LoadStartArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Namespace of the Service and routing objects.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Host the requests are sent to (a Service name, short or FQDN).
    #[arg(long)]
    host: String,
    /// Enter through this Istio Gateway (`name` or `namespace/name`).
    #[arg(long)]
    gateway: Option<String>,
    /// Requests per second.
    #[arg(long, allow_negative_numbers = true)]
    rps: f64,
    /// Request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Seed of the weighted choices and answers (random by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Output: the id alone, or the stream's status as JSON.
    #[arg(short = 'o', long, default_value = "id", value_parser = ["id", "json"])]
    output: String,
}

#[derive(Debug, clap::Args)]
struct LoadListArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Output format.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["json", "table"])]
    output: String,
}

#[derive(Debug, clap::Args)]
struct LoadStopArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Id of the stream (as `load start` printed it).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Stop every stream.
    #[arg(long)]
    all: bool,
}

async fn sim_client(kubeconfig: &std::path::Path) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("reading {}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", kubeconfig.display()))?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Sends a request to the sim; an error status comes back as its message.
async fn sim_request(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<serde_json::Value, String> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let text = client.request_text(req).await.map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        e => format!("talking to the sim: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| format!("unexpected answer from the sim: {e}: {text}"))
}

async fn load(cmd: LoadCommand) -> Result<(), String> {
    use ramp_sim::load::{LoadSpec, LoadStatus};
    match cmd {
        LoadCommand::Start(args) => {
            let mut spec = LoadSpec::new(args.namespace, args.host, args.rps).path(args.path);
            for h in &args.headers {
                let (k, v) =
                    ramp_sim::mesh::HttpRequest::parse_header(h).map_err(|e| e.to_string())?;
                spec = spec.header(k, v);
            }
            spec.gateway = args.gateway;
            spec.seed = args.seed;
            let client = sim_client(&args.sim.kubeconfig).await?;
            let body = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
            let v = sim_request(&client, http::Method::POST, "/sim/v1/load", Some(body)).await?;
            if args.output == "json" {
                println!("{v}");
            } else {
                println!("{}", v["id"].as_str().unwrap_or_default());
            }
        }
        LoadCommand::List(args) => {
            let client = sim_client(&args.sim.kubeconfig).await?;
            let v = sim_request(&client, http::Method::GET, "/sim/v1/load", None).await?;
            if args.output == "json" {
                println!("{v}");
                return Ok(());
            }
            let streams: Vec<LoadStatus> = serde_json::from_value(v["streams"].clone())
                .map_err(|e| format!("unexpected answer from the sim: {e}"))?;
            println!(
                "{:<8} {:<16} {:<24} {:<16} {:>8} {:>9} {:>9} {:>8} {:>8}",
                "ID", "NAMESPACE", "HOST", "GATEWAY", "RPS", "SENT", "SERVED", "5XX", "SHADOW"
            );
            for s in streams {
                println!(
                    "{:<8} {:<16} {:<24} {:<16} {:>8} {:>9} {:>9} {:>8} {:>8}",
                    s.id,
                    s.spec.namespace,
                    s.spec.host,
                    s.spec.gateway.as_deref().unwrap_or("-"),
                    s.spec.rps,
                    s.sent,
                    s.served,
                    s.errors,
                    s.shadow
                );
                if let Some(e) = &s.last_error {
                    println!("  last error: {e}");
                }
                for w in &s.warnings {
                    println!("  warning: {w}");
                }
            }
        }
        LoadCommand::Stop(args) => {
            let client = sim_client(&args.sim.kubeconfig).await?;
            let path = match &args.id {
                Some(id) if !args.all => format!("/sim/v1/load/{id}"),
                _ => "/sim/v1/load".to_owned(),
            };
            let v = sim_request(&client, http::Method::DELETE, &path, None).await?;
            let stopped: Vec<serde_json::Value> = match v.get("streams") {
                Some(list) => list.as_array().cloned().unwrap_or_default(),
                None => vec![v],
            };
            for s in stopped {
                println!(
                    "stopped {} (sent {})",
                    s["id"].as_str().unwrap_or_default(),
                    s["sent"]
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct RouteArgs {
    /// Kubeconfig of a running ramp-sim (default: $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Namespace of the Service and routing objects.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Host the requests are sent to (a Service name, short or FQDN).
    #[arg(long)]
    host: String,
    /// Request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Enter through this gateway (`name` or `namespace/name`) instead of from
    /// inside the mesh: a Gateway API Gateway's HTTPRoutes, or the
    /// VirtualServices bound to an Istio Gateway of that name, apply.
    #[arg(long)]
    gateway: Option<String>,
    /// Send from a client in this namespace: its consumer HTTPRoutes for the
    /// destination Service apply.
    #[arg(long, value_name = "NAMESPACE")]
    from_namespace: Option<String>,
    /// How many requests to send.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Seed of the weighted choices (same seed, same result).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output format.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["json", "table"])]
    output: String,
}

async fn route(args: RouteArgs) -> Result<(), String> {
    let mut headers = std::collections::BTreeMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("invalid header {h:?}: expected 'Name: value'"))?;
        headers.insert(k.trim().to_string(), v.trim().to_string());
    }
    let query = ramp_sim::mesh::RouteQuery {
        namespace: args.namespace,
        host: args.host,
        path: args.path,
        method: args.method,
        headers,
        requests: args.requests,
        seed: args.seed,
        gateway: args.gateway,
        source_namespace: args.from_namespace,
    };
    let kc = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .map_err(|e| format!("reading {}: {e}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", args.kubeconfig.display()))?;
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&query).map_err(|e| e.to_string())?;
    let req = http::Request::post("/sim/v1/route")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(req)
        .await
        .map_err(|e| format!("routing through the sim: {e}"))?;
    let report: ramp_sim::mesh::RouteReport = serde_json::from_str(&text)
        .map_err(|e| format!("unexpected answer from the sim: {e}: {text}"))?;
    if args.output == "json" {
        println!("{text}");
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for the server (written once it listens).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// CRD (or other) manifests to load: YAML files (multi-document) or directories.
    #[arg(long = "crds", value_name = "DIR_OR_FILE")]
    crds: Vec<PathBuf>,
    /// Bearer token to put in the kubeconfig (random by default).
    #[arg(long, env = "RAMP_SIM_TOKEN")]
    token: Option<String>,
    /// Run only the API server: no Deployment/ReplicaSet controllers, kubelet or endpoints.
    #[arg(long)]
    no_controllers: bool,
    /// While writes keep coming, a watch stream sends what arrived at most this often (in
    /// milliseconds), in one socket write; a change after a quiet spell goes out at once.
    /// 0 sends every event as soon as it happens.
    #[arg(long, value_name = "MS", default_value_t = ramp_sim::watch::COALESCE_WINDOW.as_millis() as u64)]
    watch_coalesce_ms: u64,
    /// Where admission webhooks declared with `clientConfig.service` are reached (there is no
    /// cluster DNS): `NAMESPACE/NAME:PORT=URL`, e.g.
    /// `ramp-system/ramp-webhook:443=https://127.0.0.1:9443`. Repeatable.
    #[arg(long = "webhook-service", value_name = "NS/NAME:PORT=URL")]
    webhook_services: Vec<String>,
}

/// Parses `NAMESPACE/NAME:PORT=URL`.
fn parse_service_route(s: &str) -> Result<(String, String, u16, String), String> {
    let bad = || format!("--webhook-service {s:?}: expected NAMESPACE/NAME:PORT=URL");
    let (service, url) = s.split_once('=').ok_or_else(bad)?;
    let (ns, rest) = service.split_once('/').ok_or_else(bad)?;
    let (name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if ns.is_empty() || name.is_empty() || url.is_empty() {
        return Err(bad());
    }
    Ok((ns.into(), name.into(), port, url.into()))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = ServerConfig {
        listen: args.listen,
        watch_coalesce: std::time::Duration::from_millis(args.watch_coalesce_ms),
        ..ServerConfig::default()
    };
    if let Some(t) = args.token {
        config.token = t;
    }
    let routes = args
        .webhook_services
        .iter()
        .map(|s| parse_service_route(s))
        .collect::<Result<Vec<_>, _>>()?;
    let server = Server::start(Store::new(), config)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    for (ns, name, port, url) in routes {
        server.webhook_services().insert(&ns, &name, port, &url)?;
    }
    let controllers = (!args.no_controllers).then(|| {
        ramp_sim::controllers::Controllers::start(
            server.store().clone(),
            ramp_sim::controllers::ControllerConfig::default(),
        )
    });
    if !args.crds.is_empty() {
        let loaded = load_manifests(server.store(), &args.crds).map_err(|e| e.to_string())?;
        tracing::info!(count = loaded.len(), "loaded manifests");
    }
    // Last: whoever waits for the kubeconfig finds the manifests served.
    server
        .write_kubeconfig(&args.kubeconfig)
        .map_err(|e| format!("cannot write kubeconfig {}: {e}", args.kubeconfig.display()))?;
    println!(
        "ramp-sim listening on {} (kubeconfig: {})",
        server.url(),
        args.kubeconfig.display()
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(c) = controllers {
        c.shutdown().await;
    }
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAMP_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Route(args) => route(args).await,
        Command::Load(cmd) => load(cmd).await,
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ramp-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
