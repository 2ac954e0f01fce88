//! `ramp-sim`: the embedded Kubernetes-compatible API server as a command.
//!
//! ```text
//! ramp-sim serve --listen 127.0.0.1:0 --kubeconfig ./kubeconfig --crds ../shared/crds
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
    let server = Server::start(Store::new(), config)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    server
        .write_kubeconfig(&args.kubeconfig)
        .map_err(|e| format!("cannot write kubeconfig {}: {e}", args.kubeconfig.display()))?;
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
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ramp-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
